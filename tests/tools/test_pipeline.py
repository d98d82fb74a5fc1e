"""tools/pipeline.py: the stages run in dependency order on real data (each under torchrun on two
processes, as shipped: tests/conftest.py), a rerun skips complete stages and done evaluations,
the summary holds every stage, both AR curves and the evaluation of both ARs, the progress lines
follow each stage to its last step with ETAs that follow from the stages' times; bad pipelines
fail naming the stage."""
import json
import math
import os.path as osp
import re

import numpy as np
import pytest

from gear.pipeline.chain import load_pipeline, stage_command
from gear.pipeline.progress import (StepProgress, fmt_duration, log_line, pipeline_eta,
                                    planned_steps, step_time)

from ..conftest import PIPELINE, PIPELINE_LENGTH, pipeline_eval_options, run_tool, scalars
from ..evaluation.test_fid import frechet_by_hand

STAGE0 = 'configs/tokenizer/tokenizer_vq_tiny_fashionmnist.py'
CODEBOOK_SIZE = 256  # configs/_base_/models/vq_tiny.py
STAGES = ['stage0_warmup', 'stage1_gear', 'stage2_vqonly', 'baseline']
# a progress line between a stage's launch and end line (gear/pipeline/progress.py)
PERIODIC = (r'(starting|iter [0-4]/4 \(\d+%\)(, finishing)?), elapsed \S+(, stage ETA \S+)?'
            r'(, pipeline ETA ~\S+)?')


def train_rows(stage_dir) -> dict:
    """step -> the training row a stage logged (the rows with learning rates) in scalars.json."""
    return {r['step']: r for r in scalars(stage_dir) if any(k.endswith('.lr') for k in r)}


def seconds(duration: str) -> int:
    """``1m05s`` -> 65: fmt_duration's text back in seconds."""
    h, m, s = re.fullmatch(r'(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?', duration).groups()
    return 3600 * int(h or 0) + 60 * int(m or 0) + int(s or 0)


def check_codebook(usage, perplexity, entropy):
    """Exact relations of codebook statistics over 256 codes: usage counts used codes,
    perplexity = exp(entropy) and cannot exceed the number of used codes."""
    used = usage * CODEBOOK_SIZE
    assert used == round(used) and 1 <= used <= CODEBOOK_SIZE
    assert perplexity == pytest.approx(math.exp(entropy), rel=1e-5)
    assert perplexity <= used * (1 + 1e-6)


@pytest.fixture(scope='module')
def ran(pipeline_two_procs):
    return pipeline_two_procs


def test_stages_run_in_dependency_order_and_export_weights(ran):
    work_dir, proc = ran
    order = [line.split(':')[0].split()[-1] for line in proc.stdout.splitlines()
             if line.startswith('[pipeline] ') and 'gear.train' in line]
    assert order == ['stage0_warmup', 'stage1_gear', 'stage2_vqonly', 'baseline']
    launches = [line for line in proc.stdout.splitlines()
                if line.startswith('[pipeline] ') and 'gear.train' in line]
    assert all('torch.distributed.run' in line and '--nproc_per_node=2' in line
               and line.endswith('--launcher pytorch') for line in launches)
    for stage in order:
        assert osp.isfile(work_dir / stage / 'final.pth')
    # stage 1 read stage 0's export, stage 2 read stage 1's, the baseline stage 0's
    assert f'model.init_from.0.checkpoint={work_dir}/stage0_warmup/final.pth' in proc.stdout
    assert f'model.init_from.0.checkpoint={work_dir}/stage1_gear/final.pth' in proc.stdout


def test_progress_lines_follow_each_stage_to_its_last_step(ran):
    """``stage k/4`` at each launch, every second while the stage runs and at its end, with the
    stage's own step (its progress.json) up to max_iters; the pipeline ETA at the end of stage k
    is the 4 - k stages to go at the mean time per step of those done (4 steps each)."""
    _, proc = ran
    lines, walls = proc.stdout.splitlines(), []
    for k, name in enumerate(STAGES, 1):
        own = [line for line in lines if line.startswith(f'[pipeline] stage {k}/4 {name}: ')]
        assert 'gear.train' in own[0], own[0]
        periodic = [line.split(': ', 1)[1] for line in own[1:-1]]
        assert periodic and all(re.fullmatch(PERIODIC, line) for line in periodic), own
        assert any(line.startswith('iter ') for line in periodic), own  # its progress.json read
        end = re.fullmatch(rf'\[pipeline\] stage {k}/4 {name}: done in (\S+), iter 4/4, '
                           r'pipeline ETA ~(\S+)', own[-1])
        assert end, own[-1]
        walls.append(seconds(end[1]))
        expected = (4 - k) * sum(walls) / k
        assert abs(seconds(end[2]) - expected) <= 2.5, (own[-1], walls)
    assert any(', stage ETA ' in line for line in lines)
    for k, name in enumerate(['stage2_vqonly', 'baseline'], 1):
        own = [line for line in lines if line.startswith(f'[pipeline] evaluate {k}/2 {name}: ')]
        assert own[0].endswith(f'{name}/final.pth'), own
        assert all(re.search(r': running, elapsed \S+$', line) for line in own[1:-1]), own
        assert re.search(rf': done in \S+, \S+/{name}/evaluation\.json$', own[-1]), own


def test_eta_arithmetic(tmp_path):
    assert [fmt_duration(s) for s in (0, 44.6, 65, 3599, 7380)] == [
        '0s', '45s', '1m05s', '59m59s', '2h03m']
    assert pipeline_eta([30.0], [100.0, 50.0]) == 180.0  # one at a time: the sum
    assert pipeline_eta([30.0, 10.0], [100.0], jobs=2) == 70.0  # two at a time: half of it
    assert pipeline_eta([90.0], [10.0], jobs=2) == 90.0  # never below the longest running one
    assert pipeline_eta([], []) == 0.0
    # seconds per step: a finished stage's of the same config, a running one's, the mean of all
    assert step_time('a', {'a': 2.0}, {'a': 5.0}) == 2.0
    assert step_time('a', {}, {'a': 5.0}) == 5.0
    assert step_time('c', {'a': 2.0}, {'b': 4.0, 'a': 9.0}) == 3.0
    assert step_time('c', {}, {}) is None
    # steps to go: the shipped config's max_iters or the option, less a previous run's step
    from mmengine.config import Config
    shipped = Config.fromfile(STAGE0).train_cfg.max_iters
    assert planned_steps(STAGE0, {}, str(tmp_path)) == shipped
    (tmp_path / 'progress.json').write_text(json.dumps(dict(iter=3, max_iters=4)))
    assert planned_steps(STAGE0, {'train_cfg.max_iters': 4}, str(tmp_path)) == 1
    assert planned_steps('configs/nope.py', {}, str(tmp_path)) is None


def test_each_pipeline_line_is_one_write(monkeypatch):
    """The stages write to the pipeline's stdout while it logs (unbuffered under
    PYTHONUNBUFFERED): a line written as text then newline can take a stage's line inside it,
    as ``print`` does; each progress line must reach stdout whole, in one flushed write."""
    class Recorder:
        def __init__(self):
            self.writes, self.flushed = [], 0

        def write(self, text):
            self.writes.append(text)
            return len(text)

        def flush(self):
            self.flushed = len(self.writes)

    out = Recorder()
    monkeypatch.setattr('sys.stdout', out)
    log_line('[pipeline] stage 1/4 stage0_warmup: starting, elapsed 1s')
    with StepProgress('evaluate', 1) as steps:  # the default log of the progress lines
        steps.start('baseline', 'final.pth')
        steps.finish('baseline', 'evaluation.json')
    assert out.writes == ['[pipeline] stage 1/4 stage0_warmup: starting, elapsed 1s\n',
                          '[pipeline] evaluate 1/1 baseline: final.pth\n',
                          '[pipeline] evaluate 1/1 baseline: done in 0s, evaluation.json\n']
    assert out.flushed == len(out.writes)


def test_summary_has_every_stage_and_both_curves(ran):
    work_dir, _ = ran
    summary = json.loads((work_dir / 'summary.json').read_text())
    assert set(summary['stages']) == {'stage0_warmup', 'stage1_gear', 'stage2_vqonly', 'baseline'}
    for name, stage in summary['stages'].items():
        assert stage['complete'] and stage['steps'] == 4, name
        # the final losses and codebook statistics are the stage's own step-4 log row
        logged = train_rows(work_dir / name)[4]
        main_loss = 'tokenizer/loss_recon' if name == 'stage0_warmup' else 'prior/loss_ntp'
        assert main_loss in stage['final_losses'], name
        assert all(logged[k] == v for k, v in stage['final_losses'].items()), name
        codebook = stage['codebook']
        if name in ('stage0_warmup', 'stage1_gear'):  # the stages that train the tokenizer
            assert {k: logged[f'codebook/tokenizer/{k}'] for k in codebook} == codebook, name
            check_codebook(codebook['usage'], codebook['perplexity'], codebook['entropy'])
    assert 'usage' in summary['stages']['stage1_gear']['codebook']
    for role, stage in (('gear', 'stage2_vqonly'), ('baseline', 'baseline')):
        curve, rows = summary['curves'][role], train_rows(work_dir / stage)
        assert curve['stage'] == stage and curve['step'] == [2, 4] == sorted(rows)
        assert curve['loss_ntp'] == [rows[s]['prior/loss_ntp'] for s in (2, 4)]
        assert curve['loss_align'] == [rows[s]['prior/loss_align'] for s in (2, 4)]
    assert osp.getsize(work_dir / 'curves.png') > 1000


def test_summary_has_the_evaluation_of_both_ars(ran):
    work_dir, _ = ran
    evaluation = json.loads((work_dir / 'summary.json').read_text())['evaluation']
    for role, stage in (('gear', 'stage2_vqonly'), ('baseline', 'baseline')):
        entry = evaluation[stage]
        assert entry['results'] == str(work_dir / stage / 'evaluation.json')
        assert entry['generator']['num_samples'] == 10 and entry['tokenizer']['num_images'] == 8
        assert set(entry['feature_alignment']['effnet']) == {
            'cka_tokenizer', 'cka_ar', 'projector_cosine'}
        results = json.loads(open(entry['results']).read())
        assert results['request']['per_class'] == 1 and results['reference']['sha256']
        # the summary's numbers are the results file's; the codebook numbers relate exactly
        for section in ('generator', 'tokenizer'):
            assert all(results[section][k] == v for k, v in entry[section].items()), section
        tok = entry['tokenizer']
        check_codebook(tok['codebook_usage'], tok['codebook_perplexity'], tok['codebook_entropy'])
        for metric in ('fid', 'psnr', 'ssim'):
            section = 'generator' if metric == 'fid' else 'tokenizer'
            assert evaluation['comparison'][metric][role] == entry[section][metric]
    assert set(evaluation['comparison']['fid']) == {'gear', 'baseline'}


def test_baseline_fid_recomputed_from_its_weights(ran):
    """The baseline's FID, recomputed: its final weights sampled with the recorded settings,
    the recorded FID network's features, the cached reference features, the distance written
    out (tests/evaluation/test_fid.py)."""
    from gear.apis.loading import load_model
    from gear.evaluation.inception import InceptionFeatures
    from gear.evaluation.sampling import SamplingSettings, class_balanced_labels, sample_images
    work_dir, _ = ran
    results = json.loads((work_dir / 'baseline' / 'evaluation.json').read_text())
    model = load_model(str(work_dir / 'baseline' / 'final.pth'))
    images = sample_images(model, class_balanced_labels(10, results['per_class']),
                           SamplingSettings(**results['sampling']))  # (10, H, W, 3) uint8
    inception = InceptionFeatures(results['inception']['file'])
    assert inception.feature_network_sha256[:16] == results['inception']['sha256']
    fake = inception(images.permute(0, 3, 1, 2).float() / 127.5 - 1)  # (10, 2048)
    real = np.load(results['reference']['file'])['features']  # (20, 2048)
    assert real.shape == (20, 2048)
    fid = json.loads((work_dir / 'summary.json').read_text())['evaluation']['baseline'][
        'generator']['fid']
    assert fid == pytest.approx(frechet_by_hand(real, fake), rel=1e-6)


def test_rerun_skips_complete_stages(ran):
    work_dir, _ = ran
    before = osp.getmtime(work_dir / 'stage1_gear' / 'final.pth')
    evaluated = osp.getmtime(work_dir / 'baseline' / 'evaluation.json')
    proc = run_tool(['tools/pipeline.py', PIPELINE, '--work-dir', str(work_dir),
                     '--cfg-options', *PIPELINE_LENGTH,
                     '--eval-options', *pipeline_eval_options(work_dir)])
    assert proc.stdout.count('complete (') == 4 and 'gear.train' not in proc.stdout
    assert osp.getmtime(work_dir / 'stage1_gear' / 'final.pth') == before
    assert proc.stdout.count('), skipped') == 6  # 4 stages, 2 evaluations
    assert osp.getmtime(work_dir / 'baseline' / 'evaluation.json') == evaluated


def test_bad_pipelines_name_the_stage(tmp_path):
    bad = tmp_path / 'bad.py'
    bad.write_text("work_dir = 'w'\nstages = [dict(name='a', config='" + PIPELINE +
                   "', inputs={'model.x': 'b'})]\n")
    with pytest.raises(ValueError, match=r"stages\[0\] \(a\): inputs\['model.x'\] names 'b'"):
        load_pipeline(str(bad))
    bad.write_text("work_dir = 'w'\nstages = [dict(name='a', config='configs/nope.py')]\n")
    with pytest.raises(FileNotFoundError, match='config not found: configs/nope.py'):
        load_pipeline(str(bad))


def test_parallel_stages_stop_at_a_failure_naming_the_stage_and_its_log(tmp_path):
    from gear.pipeline.chain import Pipeline, Stage, run_pipeline
    tiny = 'configs/tokenizer/tokenizer_vq_tiny_fashionmnist.py'
    typo = {'model.tokenizer.quantizer.codebook_sise': 8}  # fails the config check at once
    pipeline = Pipeline(work_dir=str(tmp_path), stages=[
        Stage('a', tiny, cfg_options=typo), Stage('b', tiny, cfg_options=typo),
        Stage('c', tiny, inputs={'model.init_from.0.checkpoint': 'a'})])
    lines = []
    with pytest.raises(RuntimeError, match=r'stage [ab] failed \(exit 1\); see .*pipeline\.log'):
        run_pipeline(pipeline, jobs=2, log=lines.append)
    launched = [line.split()[3] for line in lines if 'threads, log' in line]  # stage k/3 NAME
    assert sorted(launched) == ['a', 'b']  # side by side; c never starts
    assert 'codebook_sise' in (tmp_path / 'a' / 'pipeline.log').read_text()


@pytest.mark.parametrize('family', ['lfq', 'ibq'])
def test_the_pipeline_of_each_quantizer_family_runs_end_to_end(family, tmp_path):
    """configs/pipelines/gear_{lfq,ibq}_tiny_fashionmnist.py as shipped, shortened in length
    only (one process, no evaluation: the VQ pipeline covers that): every stage reads the one
    before it, and the summary compares the two ARs."""
    work_dir = tmp_path / family
    run_tool(['tools/pipeline.py', f'configs/pipelines/gear_{family}_tiny_fashionmnist.py',
              '--work-dir', str(work_dir), '--skip-eval', '--cfg-options',
              *[o for o in PIPELINE_LENGTH if not o.startswith('env_cfg')]], timeout=1200)
    for stage in ('stage0_warmup', 'stage1_gear', 'stage2_vqonly', 'baseline'):
        assert (work_dir / stage / 'final.pth').is_file(), stage
    summary = json.loads((work_dir / 'summary.json').read_text())
    for role, stage in (('gear', 'stage2_vqonly'), ('baseline', 'baseline')):
        curve, rows = summary['curves'][role], train_rows(work_dir / stage)
        assert curve['step'] == [2, 4] and curve['loss_ntp'] == [rows[s]['prior/loss_ntp'] for s in (2, 4)]
    row = train_rows(work_dir / 'stage1_gear')[4]
    assert row['tokenizer/loss_align_soft'] != 0 and row['tokenizer/loss_entropy'] != 0
    assert 0 < summary['stages']['stage1_gear']['codebook']['usage'] <= 1


CODES_PIPELINE = """work_dir = 'w'
stages = [
    dict(name='s0', config='configs/tokenizer/tokenizer_vq_tiny_fashionmnist.py'),
    dict(name='codes', kind='codes', config='configs/ar/baseline_vq_tiny_fashionmnist_codes.py',
         inputs={'model.init_from.0.checkpoint': 's0'}),
    dict(name='ar', config='configs/ar/baseline_vq_tiny_fashionmnist_codes.py',
         inputs={'model.init_from.0.checkpoint': 's0', 'train_dataloader.dataset.root': 'codes'}),
]
"""


def test_a_codes_stage_extracts_and_its_directory_feeds_the_ar(tmp_path):
    """``kind='codes'`` runs ``gear.extract_codes`` into the stage's directory, which a later
    stage's ``inputs`` reads as its codes root; it is complete when its meta.json is there."""
    from gear.extract_codes import build_parser as codes_parser
    from gear.train import build_parser as train_parser
    (tmp_path / 'p.py').write_text(CODES_PIPELINE)
    pipeline = load_pipeline(str(tmp_path / 'p.py'), str(tmp_path / 'w'))
    codes, ar = pipeline.stage('codes'), pipeline.stage('ar')
    cmd = stage_command(pipeline, codes, {'train_cfg.max_iters': 4}, nproc_per_node=2)
    assert cmd[cmd.index('-m', 2):cmd.index('-m', 2) + 2] == ['-m', 'gear.extract_codes']
    assert '--launcher' not in cmd  # the extraction reads the world from torchrun's environment
    args = codes_parser().parse_args(pipeline.train_args(codes))  # what the entry point parses
    assert args.out == str(tmp_path / 'w' / 'codes') and args.no_progress
    assert args.cfg_options['model.init_from.0.checkpoint'] == pipeline.final_weights('s0')
    ar_args = train_parser().parse_args(pipeline.train_args(ar))
    assert ar_args.cfg_options['train_dataloader.dataset.root'] == str(tmp_path / 'w' / 'codes')
    assert ar.depends_on == ['codes', 's0']
    assert pipeline.log_file('codes') == str(tmp_path / 'w' / 'codes.log')  # not inside it
    (tmp_path / 'w' / 'codes.partial').mkdir(parents=True)  # an interrupted extraction
    assert not pipeline.is_complete('codes')
    (tmp_path / 'w' / 'codes').mkdir()
    (tmp_path / 'w' / 'codes' / 'meta.json').write_text('{}')
    assert pipeline.is_complete('codes') and not pipeline.is_complete('ar')


def test_stage_options_reach_one_stage_and_name_a_bad_stage(tmp_path):
    (tmp_path / 'p.py').write_text(CODES_PIPELINE)
    pipeline = load_pipeline(str(tmp_path / 'p.py'))
    pipeline.set_stage_options({'codes:train_dataloader.dataset.source.num_samples': 16})
    assert pipeline.options(pipeline.stage('codes'), {'a': 1}) == {
        'model.init_from.0.checkpoint': pipeline.final_weights('s0'), 'a': 1,
        'train_dataloader.dataset.source.num_samples': 16}
    assert 'train_dataloader.dataset.source.num_samples' not in pipeline.options(
        pipeline.stage('ar'))
    with pytest.raises(ValueError, match=r"STAGE:KEY=VALUE with STAGE one of \['s0', 'codes', "
                                         r"'ar'\]"):
        pipeline.set_stage_options({'nope:train_cfg.max_iters': 2})
    (tmp_path / 'k.py').write_text(CODES_PIPELINE.replace("kind='codes'", "kind='code'"))
    with pytest.raises(ValueError, match=r"stages\[1\] \(codes\): kind 'code': one of "):
        load_pipeline(str(tmp_path / 'k.py'))
