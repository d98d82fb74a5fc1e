"""tools/pipeline.py: the stages run in dependency order on real data (each under torchrun on two
processes, as shipped: tests/conftest.py), a rerun skips complete stages and done evaluations,
the summary holds every stage, both AR curves and the evaluation of both ARs; bad pipelines fail
naming the stage."""
import json
import os.path as osp

import pytest

from gear.pipeline.chain import load_pipeline

from ..conftest import PIPELINE, PIPELINE_LENGTH, pipeline_eval_options, run_tool


@pytest.fixture(scope='module')
def ran(pipeline_two_procs):
    return pipeline_two_procs


def test_stages_run_in_dependency_order_and_export_weights(ran):
    work_dir, proc = ran
    order = [line.split(':')[0].split('] ')[1] for line in proc.stdout.splitlines()
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


def test_summary_has_every_stage_and_both_curves(ran):
    work_dir, _ = ran
    summary = json.loads((work_dir / 'summary.json').read_text())
    assert set(summary['stages']) == {'stage0_warmup', 'stage1_gear', 'stage2_vqonly', 'baseline'}
    for name, stage in summary['stages'].items():
        assert stage['complete'] and stage['steps'] == 4, name
        assert stage['final_losses'], name
    assert 'usage' in summary['stages']['stage1_gear']['codebook']
    assert 'prior/loss_ntp' in summary['stages']['stage1_gear']['final_losses']
    for role in ('gear', 'baseline'):
        curve = summary['curves'][role]
        assert curve['step'] == [2, 4] and len(curve['loss_ntp']) == 2 and len(curve['loss_align']) == 2
    assert osp.getsize(work_dir / 'curves.png') > 1000


def test_summary_has_the_evaluation_of_both_ars(ran):
    work_dir, _ = ran
    evaluation = json.loads((work_dir / 'summary.json').read_text())['evaluation']
    for stage in ('stage2_vqonly', 'baseline'):
        entry = evaluation[stage]
        assert entry['results'] == str(work_dir / stage / 'evaluation.json')
        assert entry['generator']['fid'] > 0 and entry['generator']['num_samples'] == 10
        assert 0 <= entry['tokenizer']['ssim'] <= 1 and entry['tokenizer']['num_images'] == 8
        assert set(entry['feature_alignment']['effnet']) == {
            'cka_tokenizer', 'cka_ar', 'projector_cosine'}
        results = json.loads(open(entry['results']).read())
        assert results['request']['per_class'] == 1 and results['reference']['sha256']
    assert set(evaluation['comparison']['fid']) == {'gear', 'baseline'}


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
    launched = [line.split()[1] for line in lines if 'threads, log' in line]
    assert sorted(launched) == ['a', 'b']  # side by side; c never starts
    assert 'codebook_sise' in (tmp_path / 'a' / 'pipeline.log').read_text()
