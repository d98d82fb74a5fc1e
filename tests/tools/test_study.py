"""tools/study.py: a small study (2 seeds, GEAR + the straight-through ablation) runs on real
data two stages at a time, with progress lines for each, and reports speed-ups that follow from
its own logs; the speed-up arithmetic; bad study configs fail naming the key."""
import json
import math
import os.path as osp
import re

import pytest

from gear.pipeline.study import load_study
from gear.pipeline.study_report import speedup, spread, steps_to_reach

from ..conftest import run_tool
from .test_pipeline import CODEBOOK_SIZE, check_codebook, train_rows

FAST = ['train_cfg.max_iters=4', 'train_cfg.val_interval=2', 'default_hooks.logger.interval=2',
        'default_hooks.checkpoint.interval=2', 'global_batch_size=8',
        'val_dataloader.dataset.num_samples=16']
EVAL = ['per_class=1', 'reference_images=20', 'tokenizer_images=8', 'analysis_images=8',
        'sampling.batch_size=5']
STUDY = """_base_ = [{base!r}]
seeds = [0, 1]
variants = {{'_delete_': True, 'gear': {{}}, 'st_end_to_end': {{'model.type': 'GEAREndToEnd'}}}}
variant_seeds = {{'_delete_': True, 'st_end_to_end': [0]}}
"""


def small_study(tmp_path, repo_root) -> str:
    path = tmp_path / 'study.py'
    path.write_text(STUDY.format(base=osp.join(repo_root, 'configs/studies/gear_vq_tiny_fashionmnist.py')))
    return str(path)


@pytest.fixture(scope='module')
def ran(tmp_path_factory, fashion_mnist_root, repo_root):
    tmp = tmp_path_factory.mktemp('study')
    config, work_dir = small_study(tmp, repo_root), tmp / 'run'
    proc = run_tool(['tools/study.py', config, '--work-dir', str(work_dir), '--jobs', '2',
                     '--progress-interval', '1', '--cfg-options', *FAST, '--eval-options', *EVAL,
                     f'cache_dir={tmp / "fid_cache"}'], timeout=900)
    with open(work_dir / 'study.json') as f:
        return work_dir, proc, json.load(f)


def test_every_arm_and_seed_trains_and_the_report_is_written(ran):
    work_dir, proc, result = ran
    stages = ['warmup', 'gear_s0', 'gear_s0_ar', 'gear_s1', 'gear_s1_ar', 'st_end_to_end_s0',
              'st_end_to_end_s0_ar', 'baseline_s0_ar', 'baseline_s1_ar']
    for stage in stages:
        assert osp.isfile(work_dir / stage / 'final.pth'), stage
    assert 'threads' in proc.stdout  # run side by side
    for png in ('ar_curves.png', 'ablation_ar_curves.png', 'stage1_codebook.png'):
        assert (work_dir / png).stat().st_size > 1000
    report = (work_dir / 'report.md').read_text()
    assert 'st_end_to_end' in report and '| 1 |' in report
    assert set(result['evaluation']) == {'gear_s0_ar', 'st_end_to_end_s0_ar', 'baseline_s0_ar'}
    for stage, entry in result['evaluation'].items():  # the numbers of each evaluation.json
        assert entry['results'] == str(work_dir / stage / 'evaluation.json')
        with open(entry['results']) as f:
            full = json.load(f)
        for key in ('psnr', 'rfid', 'l1', 'ssim', 'psnr_float', 'ssim_gaussian11',
                    'codebook_usage', 'codebook_perplexity', 'codebook_entropy'):
            assert entry[key] == full['tokenizer'][key], (stage, key)
        for key in ('fid', 'precision', 'recall', 'num_samples'):
            assert entry[key] == full['generator'][key], (stage, key)
        check_codebook(entry['codebook_usage'], entry['codebook_perplexity'],
                       entry['codebook_entropy'])


def test_progress_lines_number_the_stages_side_by_side_and_reach_the_last_step(ran):
    """Two at a time, each of the 9 stages is ``stage k/9`` (k in launch order) from its launch
    to its end at step 4 of 4, with a pipeline ETA; while two run, each tick has a line for
    both; the 3 evaluations are ``evaluate k/3``, each with its time."""
    _, proc, _ = ran
    lines = proc.stdout.splitlines()
    launched = [re.match(r'\[pipeline\] stage (\d)/9 (\S+) \(\d+ threads, log ', line)
                for line in lines]
    launched = [(int(m[1]), m[2]) for m in launched if m]
    assert [k for k, _ in launched] == list(range(1, 10)) and launched[0][1] == 'warmup'
    for k, name in launched:
        own = [line for line in lines if line.startswith(f'[pipeline] stage {k}/9 {name}')]
        assert re.fullmatch(rf'\[pipeline\] stage {k}/9 {name}: done in \S+, iter 4/4, '
                            r'pipeline ETA ~\S+', own[-1]), own[-1]
        assert any(re.search(r': iter [0-4]/4 \(', line) for line in own[1:-1]), own
    ticks = [re.match(r'\[pipeline\] stage \d/9 (\S+): (starting|iter)', line) for line in lines]
    names = [m[1] if m else None for m in ticks]
    assert any(a and b and a != b for a, b in zip(names, names[1:]))  # two stages, one tick
    for k in (1, 2, 3):
        own = [line for line in lines
               if re.match(rf'\[pipeline\] evaluate {k}/3 \S+_s0_ar: ', line)]
        assert own[0].endswith('/final.pth'), own
        assert re.search(r': done in \S+, \S+/evaluation\.json$', own[-1]), own


def test_every_run_of_a_seed_reads_the_same_teacher_features(ran):
    """Stage 1 and AR runs of one seed see the same images in the same order, so the shared
    teacher cache holds each seed's 4 x 8 training images and the 16 validation images once."""
    work_dir, _, _ = ran
    entries = list((work_dir / 'teacher_cache').rglob('*.npy'))
    assert len(entries) == 2 * 4 * 8 + 16


def test_speedups_follow_from_the_logged_curves(ran):
    work_dir, _, result = ran
    for seed in (0, 1):
        gear, base = result['ar_curves']['gear'][str(seed)], result['ar_curves']['baseline'][str(seed)]
        assert gear['step'] == base['step'] == [2, 4]  # same budget and logging
        for curve, stage in ((gear, f'gear_s{seed}_ar'), (base, f'baseline_s{seed}_ar')):
            rows = train_rows(work_dir / stage)  # the AR run's own scalars.json
            for key in ('prior/loss_ntp', 'prior/loss_align'):
                assert curve[key] == [rows[s][key] for s in (2, 4)], (stage, key)
        got = result['speedup']['gear']['per_seed'][str(seed)]['loss_ntp']
        assert got == json.loads(json.dumps(speedup(gear, base, 'prior/loss_ntp')))
    stage1 = result['stage1_curves']['st_end_to_end']['0']
    rows = train_rows(work_dir / 'st_end_to_end_s0')
    assert stage1['step'] == [2, 4] == sorted(rows)
    for key in ('codebook/tokenizer/usage', 'codebook/tokenizer/perplexity',
                'assign/natural_entropy', 'tokenizer/loss_recon', 'prior/loss_ntp'):
        assert stage1[key] == [rows[s][key] for s in (2, 4)], key
    for s in (2, 4):  # usage counts codes of 256, perplexity = exp(entropy) <= codes used
        check_codebook(rows[s]['codebook/tokenizer/usage'],
                       rows[s]['codebook/tokenizer/perplexity'],
                       rows[s]['codebook/tokenizer/entropy'])
        assert rows[s]['assign/natural_entropy'] <= math.log(CODEBOOK_SIZE) + 1e-6


def test_rerun_skips_training(ran, repo_root, tmp_path):
    work_dir, _, _ = ran
    config = small_study(tmp_path, repo_root)
    proc = run_tool(['tools/study.py', config, '--work-dir', str(work_dir), '--skip-eval',
                     '--cfg-options', *FAST])
    assert proc.stdout.count('complete') == 9 and 'gear.train' not in proc.stdout


def test_speedup_arithmetic():
    base = {'step': [10, 20, 30, 40], 'loss': [4.0, 3.5, 3.2, 3.0]}
    fast = {'step': [10, 20, 30, 40], 'loss': [3.6, 3.0, 2.8, 2.7]}
    assert steps_to_reach(fast['step'], fast['loss'], 3.0) == 20
    assert speedup(fast, base, 'loss') == dict(target=3.0, baseline_steps=40, steps=20, final=2.7,
                                               speedup=2.0)
    slow = {'step': [10, 20, 30, 40], 'loss': [4.5, 4.0, 3.6, 3.1]}
    assert speedup(slow, base, 'loss')['speedup'] is None  # never reached: no number
    s = spread([2.0, 4.0, None])
    assert s['n'] == 2 and s['mean'] == 3.0 and abs(s['std'] - 2 ** 0.5) < 1e-12


@pytest.mark.parametrize('name, stage1_runs, seeds', [
    ('gear_vq_tiny_fashionmnist', 7, 3), ('gear_vq_b_imagenet128', 7, 3),
    ('gear_vq_tiny_fashionmnist_budget', 2, 1)])
def test_every_stage_of_the_shipped_studies_passes_the_config_check(name, stage1_runs, seeds,
                                                                    repo_root):
    from gear.engine import check_config
    from gear.engine.config_check import read_config
    study = load_study(osp.join(repo_root, f'configs/studies/{name}.py'))
    pipeline = study.pipeline()
    assert len(pipeline.stages) == 1 + 2 * stage1_runs + seeds  # warm-up, stage 1 + AR, baselines
    for stage in pipeline.stages:
        cfg = read_config(osp.join(repo_root, stage.config), pipeline.options(stage))
        check_config(cfg)  # read_config: every option names a key something reads
        cache = cfg.model.get('teachers', {}).get('effnet', {}).get('cache_dir')
        if name.startswith('gear_vq_tiny_fashionmnist') and stage.name != 'warmup':
            assert cache == osp.join(study.work_dir, 'teacher_cache')  # {work_dir} filled in
        if name.endswith('_budget') and stage.name in ('gear_s0', 'lambda_0_s0'):
            assert cfg.train_cfg.max_iters == 900  # the variant's budget reaches its stage


@pytest.mark.parametrize('text, message', [
    ("seeds = [0, 0]", 'distinct'),
    ("variants = {'_delete_': True, 'tau_1': {}}", "must include the reference 'gear'"),
    ("variant_seeds = {'tau': [0]}", "unknown variant 'tau'"),
    ("variant_seeds = {'gear': [7]}", 'subset of seeds'),
    ("stage_options = {'stage3': {}}", 'warmup / stage1 / ar'),
    ("ar = 'configs/ar/nope.py'", 'ar: config not found'),
])
def test_bad_study_configs_name_the_key(tmp_path, repo_root, text, message):
    path = tmp_path / 'bad.py'
    path.write_text(f"_base_ = [{osp.join(repo_root, 'configs/studies/gear_vq_tiny_fashionmnist.py')!r}]\n"
                    f"{text}\n")
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        load_study(str(path))
