"""The write-ahead journal (job/journal.py) on moto's S3: what a kill leaves is read back per XNAT
target, segments stay small, and markers of earlier manifest versions carry over for their target only."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from xnat_upload.config import Settings
from xnat_upload.job.checkpoint import JobState
from xnat_upload.job.journal import SEGMENT_MAX_PATHS, open_journal
from xnat_upload.result import FileResult, PreviousOutcomes
from xnat_upload.store import JobStore

A = {"project": "P", "subject": "S", "experiment": "E1", "scan": "1", "resource": "A"}
B = {**A, "resource": "B"}


@pytest.fixture
def store() -> Iterator[JobStore]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="data-bucket")
        settings = Settings.from_env({"XNAT_URL": "https://xnat.example.org", "DATA_BUCKET": "data-bucket"})
        yield JobStore(client, settings)


def start(store: JobStore, version: str, state: JobState | None = None, dropped: JobState | None = None):
    state = state or JobState.new("job", version)
    journal, previous = open_journal(
        store, "job", version, state, dropped, store.read_result("job"), PreviousOutcomes()
    )
    return state, journal, previous


def test_paths_sent_before_a_kill_come_back_for_their_target_only(store: JobStore) -> None:
    _, journal, _ = start(store, "v1")
    sent = [FileResult("a.nii"), FileResult("b.nii")]
    journal.bind(A).before(sent, {"a.nii": "md5-a", "b.nii": None})
    sent[1].md5 = "md5-b"
    sent[1].put_unconfirmed = True
    journal.bind(A).after(sent[1:])  # the PUT of b.nii answered; a.nii's (in flight) never did

    _, _, previous = start(store, "v1")  # the redelivered message: no checkpoint was written

    assert previous.sent_at("P/E1/1/A") == {"a.nii": "md5-a", "b.nii": "md5-b"}
    assert previous.sent_at("P/E1/1/B") == {}


def test_a_path_the_put_did_not_store_is_no_longer_the_jobs_own(store: JobStore) -> None:
    _, journal, _ = start(store, "v1")
    file = FileResult("a.nii")
    journal.bind(A).before([file], {})
    journal.bind(A).after([file])  # put_unconfirmed False: XNAT kept another writer's bytes (duplicates)

    _, _, previous = start(store, "v1")

    assert previous.sent_at("P/E1/1/A") == {}


def test_segments_absorbed_by_a_checkpoint_are_not_read_again(store: JobStore) -> None:
    state, journal, _ = start(store, "v1")
    journal.bind(A).before([FileResult("a.nii")], {"a.nii": "m"})
    checkpoint = JobState.from_bytes(state.to_bytes())  # the state handed to the next invocation

    _, _, previous = start(store, "v1", state=checkpoint)

    assert checkpoint is not None and checkpoint.journal_seq == state.journal_seq
    assert previous.sent_at("P/E1/1/A") == {}


def test_no_write_grows_with_the_job_and_an_unchanged_outcome_is_not_written(store: JobStore) -> None:
    _, journal, _ = start(store, "v1")
    files = [FileResult(f"f{i}.nii", md5="m", put_unconfirmed=True) for i in range(SEGMENT_MAX_PATHS + 10)]
    for file in files:
        journal.bind(A).before([file], {})
    names_before = store.journal_names("job")
    journal.bind(A).after(files[-1:])  # says what `before` said: nothing to write

    assert store.journal_names("job") == names_before
    segments = [store.read_journal("job", name) for name in names_before if not name.endswith("-base.json")]
    assert [len(s["files"]) for s in segments] == [SEGMENT_MAX_PATHS, 10]


def test_a_new_version_carries_the_markers_of_an_unfinished_one_for_their_target(store: JobStore) -> None:
    _, journal, _ = start(store, "v1")
    journal.bind(A).before([FileResult("x.nii")], {})  # v1 killed in flight: no result, no checkpoint

    _, _, previous = start(store, "v2")

    assert previous.unconfirmed_at("P/E1/1/A") == {"x.nii"}
    assert previous.unconfirmed_at("P/E1/1/B") == frozenset()
    assert previous.sent_at("P/E1/1/A") == {}, "another version's sends are not this version's own"

    _, journal, _ = start(store, "v2")  # v2 went to resource B and sent y.nii there
    journal.bind(B).before([FileResult("y.nii")], {})
    _, _, third = start(store, "v3")
    assert third.unconfirmed_at("P/E1/1/A") == {"x.nii"}, "kept for a later version that targets A again"
    assert third.unconfirmed_at("P/E1/1/B") == {"y.nii"}
