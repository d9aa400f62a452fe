"""mtl.extras.studies.runner: records per run, resumable, redone when the definition changes."""
import subprocess

import pytest

from mtl.extras.studies.runner import StudyRun, read_record, run_study, stale_records


def git(root, *args):
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=root, check=True,
                          capture_output=True, text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path):
    """A clean git work tree with one commit, standing in for the study's pinned worktree."""
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q")
    (root / "code.py").write_text("x = 1\n")
    git(root, "add", "code.py")
    git(root, "commit", "-q", "-m", "code")
    return root


def counting_execute(calls):
    def execute(run):
        calls.append((run.setup, run.seed))
        return {"score": run.params["x"] * 10 + run.seed}
    return execute


RUNS = [StudyRun("toy", "a", seed, {"x": 1}) for seed in (0, 1)] + [StudyRun("toy", "b/c d", 0, {"x": 2})]


def test_each_run_is_recorded_with_results_seconds_and_provenance(tmp_path, repo):
    calls = []
    records = run_study(RUNS, counting_execute(calls), tmp_path, progress=False, root=repo)
    assert calls == [("a", 0), ("a", 1), ("b/c d", 0)]
    assert [r["results"]["score"] for r in records] == [10, 11, 20]
    on_disk = read_record(tmp_path / "toy" / "b_c_d-seed0.json")  # setup names made file-safe
    assert on_disk == records[2]
    assert on_disk["digest"] == RUNS[2].digest() and on_disk["seconds"] >= 0 and on_disk["cpu_seconds"] >= 0
    assert {"command", "commit", "cpu", "torch", "date"} <= set(on_disk["provenance"])


def test_records_keep_every_value_and_put_each_list_on_one_line(tmp_path):
    from mtl.extras.studies.runner import write_record

    record = {"b": {"scores": {"x": 0.5}, "predictions": [[1, 2], [3]]}, "a": [1, 2, 3], "c": "text", "d": {}}
    write_record(tmp_path / "r.json", record)
    text = (tmp_path / "r.json").read_text()
    assert read_record(tmp_path / "r.json") == record
    assert '"predictions": [[1,2],[3]]' in text and '"a": [1,2,3]' in text and len(text.splitlines()) == 11


def test_a_rerun_skips_recorded_runs_and_redoes_changed_or_unreadable_ones(tmp_path, repo):
    run_study(RUNS, counting_execute([]), tmp_path, progress=False, root=repo)
    calls = []
    run_study(RUNS, counting_execute(calls), tmp_path, progress=False, root=repo)
    assert calls == []  # everything recorded for the same definition
    changed = [RUNS[0], StudyRun("toy", "a", 1, {"x": 3}), RUNS[2]]
    (tmp_path / "toy" / "b_c_d-seed0.json").write_text("{not json")  # e.g. written by a crashed older version
    records = run_study(changed, counting_execute(calls), tmp_path, progress=False, root=repo)
    assert calls == [("a", 1), ("b/c d", 0)]
    assert [r["results"]["score"] for r in records] == [10, 31, 20]


def test_a_failing_run_loses_only_itself(tmp_path, repo):
    def execute(run):
        if run.seed == 1:
            raise KeyboardInterrupt  # as if killed during the second run
        return {"score": 1}

    with pytest.raises(KeyboardInterrupt):
        run_study(RUNS, execute, tmp_path, progress=False, root=repo)
    assert read_record(RUNS[0].path(tmp_path))["results"] == {"score": 1}
    assert not RUNS[1].path(tmp_path).exists() and not list((tmp_path / "toy").glob("*.tmp"))


def test_digest_depends_on_every_part_of_the_definition_but_not_on_key_order():
    base = StudyRun("s", "a", 0, {"x": 1, "y": [1, 2]})
    assert base.digest() == StudyRun("s", "a", 0, {"y": [1, 2], "x": 1}).digest()
    others = [StudyRun("t", "a", 0, base.params), StudyRun("s", "b", 0, base.params),
              StudyRun("s", "a", 1, base.params), StudyRun("s", "a", 0, {"x": 1, "y": [2, 1]})]
    assert len({base.digest(), *(run.digest() for run in others)}) == 5


def test_stale_records_are_those_of_another_definition_or_of_no_current_run(tmp_path, repo):
    run_study(RUNS, counting_execute([]), tmp_path, progress=False, root=repo)
    assert stale_records(RUNS, tmp_path) == []
    now = [RUNS[0], StudyRun("toy", "a", 1, {"x": 5})]  # seed 1 redefined, "b/c d" dropped
    assert stale_records(now, tmp_path) == sorted([RUNS[1].path(tmp_path), RUNS[2].path(tmp_path)])


def test_two_runs_with_one_record_file_are_refused(tmp_path):
    with pytest.raises(ValueError, match="share a record file"):
        run_study([StudyRun("toy", "a b", 0), StudyRun("toy", "a/b", 0)], counting_execute([]), tmp_path,
                  progress=False)


def test_a_study_refuses_to_start_in_a_work_tree_with_uncommitted_changes(tmp_path, repo):
    (repo / "code.py").write_text("x = 2\n")
    calls = []
    with pytest.raises(RuntimeError, match="uncommitted changes"):
        run_study(RUNS, counting_execute(calls), tmp_path / "records", progress=False, root=repo)
    assert calls == [] and not (tmp_path / "records").exists()


def test_a_run_is_not_recorded_when_the_code_changed_while_it_ran(tmp_path, repo):
    def execute(run):
        if run.seed == 1:  # someone commits in the study's work tree during the second run
            (repo / "code.py").write_text("x = 3\n")
            git(repo, "commit", "-q", "-am", "moved")
        return {"score": 1}

    with pytest.raises(RuntimeError, match="moved"):
        run_study(RUNS, execute, tmp_path, progress=False, root=repo)
    assert read_record(RUNS[0].path(tmp_path)) is not None and not RUNS[1].path(tmp_path).exists()


def test_records_name_the_clean_commit_of_the_work_tree_that_ran_them(tmp_path, repo):
    (record,) = run_study(RUNS[:1], counting_execute([]), tmp_path, progress=False, root=repo)
    assert record["provenance"]["commit"] == git(repo, "rev-parse", "--short", "HEAD")  # no " dirty"
