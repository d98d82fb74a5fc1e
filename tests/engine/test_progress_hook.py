"""ProgressHook: a progress file it cannot write costs a warning, never the run; a file that
cannot be read is no progress. (Its files from real runs: tests/tools/test_train.py and the
pipeline's progress lines, tests/tools/test_pipeline.py.)"""
import json
from types import SimpleNamespace

from gear.engine.hooks import progress as progress_module
from gear.engine.hooks.progress import PROGRESS_FILE, ProgressHook, read_progress


def test_an_unwritable_progress_file_warns_once_and_training_goes_on(tmp_path, monkeypatch):
    warnings = []
    monkeypatch.setattr(progress_module, 'print_log', lambda msg, **kw: warnings.append(msg))
    blocker = tmp_path / 'not_a_dir'
    blocker.write_text('')  # the work dir is a file: every write fails
    runner = SimpleNamespace(work_dir=str(blocker), iter=0, max_iters=3)
    hook = ProgressHook(interval=0)
    hook.before_train(runner)
    for step in range(3):
        hook.before_train_iter(runner, step)
        hook.after_train_iter(runner, step)
        runner.iter += 1
    hook.after_train(runner)
    assert len(warnings) == 1 and f'cannot write {blocker}/{PROGRESS_FILE}' in warnings[0]


def test_a_written_file_reads_back_and_a_broken_one_is_none(tmp_path):
    runner = SimpleNamespace(work_dir=str(tmp_path), iter=2, max_iters=5)  # resumed at 2
    hook = ProgressHook(interval=0)
    hook.before_train(runner)
    assert read_progress(str(tmp_path))['sec_per_iter'] is None  # no step yet: no rate, no ETA
    hook.before_train_iter(runner, 0)
    hook.after_train_iter(runner, 0)
    progress = read_progress(str(tmp_path))
    assert (progress['iter'], progress['start_iter'], progress['done']) == (3, 2, False)
    assert progress['eta'] == round(2 * progress['sec_per_iter'], 3)
    (tmp_path / PROGRESS_FILE).write_text('{"iter": 3, "max_')  # not JSON
    assert read_progress(str(tmp_path)) is None
    (tmp_path / PROGRESS_FILE).write_text(json.dumps([3]))
    assert read_progress(str(tmp_path)) is None
