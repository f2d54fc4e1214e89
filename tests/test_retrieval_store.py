"""The on-disk index: build/load round trip, atomic rebuilds, refusing broken or foreign indexes."""

from __future__ import annotations

import errno
import json
import os
import time
from pathlib import Path

import pytest

from retrieval import (
    IndexLoadError,
    IndexSettings,
    RetrievalError,
    build_index,
    generations,
    load_index,
)
from retrieval import store as store_module
from retrieval.ingest import read_folder
from retrieval.store import MANIFEST, PASSAGES
from tests.retrieval_fixtures import INDEXED, SKIPPED, write_corpus

DOCS = Path(__file__).resolve().parent.parent / "data" / "docs"


@pytest.fixture()
def docs(tmp_path: Path) -> Path:
    return write_corpus(tmp_path / "docs")


@pytest.fixture()
def built(docs: Path, tmp_path: Path) -> Path:
    index_dir = tmp_path / "var" / "index"
    build_index(docs, index_dir)
    return index_dir


def _siblings(index_dir: Path) -> set[str]:
    return {p.name for p in index_dir.parent.iterdir() if not p.name.endswith(".lock")}


def test_build_reports_and_load_searches(docs: Path, tmp_path: Path) -> None:
    index_dir = tmp_path / "var" / "index"
    report = build_index(docs, index_dir)
    assert report.documents == len(INDEXED)
    assert {s.path for s in report.skipped} == set(SKIPPED)
    index = load_index(index_dir)
    assert len(index) == report.passages == len(index.passages) > 0
    assert index.manifest.passages == report.passages
    assert {d.doc_id for d in index.manifest.documents} == INDEXED
    best = index.search("insulin pump shots", top_k=3)[0].passage
    assert (best.doc_id, best.title, best.source) == (
        "pumps.md",
        "Insulin pumps",
        "https://example.org/pumps",
    )
    assert index.search("DKA")[0].passage.doc_id == "sub/dka.txt"  # via the bundled synonym table


def test_passage_offsets_point_into_the_normalised_document(built: Path, docs: Path) -> None:
    texts = {d.doc_id: d.text for d in read_folder(docs)[0]}
    for passage in load_index(built).passages:
        assert texts[passage.doc_id][passage.start : passage.end] == passage.text


def test_settings_round_trip_through_the_manifest(docs: Path, tmp_path: Path) -> None:
    settings = IndexSettings(
        target_words=20, max_words=30, overlap_sentences=0, variant="plus", k1=1.2, b=0.5
    )
    build_index(docs, tmp_path / "index", settings)
    assert load_index(tmp_path / "index").settings == settings


def test_rebuild_swaps_atomically_and_reuses_unchanged_documents(built: Path, docs: Path) -> None:
    first = built.resolve()
    (docs / "pumps.md").write_text("# Pumps\n\nPumps changed a lot.\n", encoding="utf-8")
    report = build_index(docs, built)
    assert report.reused_documents == len(INDEXED) - 1
    assert built.resolve() != first and first.exists()  # the old generation stays for open readers
    assert load_index(built).search("pumps changed")[0].passage.text == "Pumps changed a lot."
    build_index(docs, built)
    assert not first.exists()  # generations older than the previous one are removed
    assert len(_siblings(built)) == 3  # the link, the current and the previous generation


@pytest.mark.parametrize("failing_step", ["write_synced", "_swap_link"])
def test_a_crash_mid_rebuild_leaves_the_old_index_and_no_temp_dirs(
    built: Path, docs: Path, monkeypatch: pytest.MonkeyPatch, failing_step: str
) -> None:
    before_files = _siblings(built)
    before_search = load_index(built).search("insulin pump")
    (docs / "new.md").write_text("# New\n\nA brand new document.\n", encoding="utf-8")

    def disk_full(*args: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(
        store_module if failing_step == "write_synced" else generations, failing_step, disk_full
    )
    with pytest.raises(OSError, match="No space"):
        build_index(docs, built)
    assert _siblings(built) == before_files
    assert load_index(built).search("insulin pump") == before_search


def test_an_interrupt_mid_build_cleans_up_too(
    built: Path, docs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = _siblings(built)

    def interrupted(*args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(store_module, "write_synced", interrupted)
    with pytest.raises(KeyboardInterrupt):
        build_index(docs, built)
    assert _siblings(built) == before and load_index(built)


def test_a_second_concurrent_build_is_refused(built: Path, docs: Path) -> None:
    with generations.build_lock(built), pytest.raises(RetrievalError, match="another build"):
        build_index(docs, built)
    assert build_index(docs, built).documents == len(INDEXED)  # the lock is released afterwards


def test_missing_index_is_refused_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(IndexLoadError, match=r"no index at .*nowhere.*run: retrieval index DOCS --index"):
        load_index(tmp_path / "nowhere")


def test_foreign_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "cat.jpg").write_bytes(b"\xff\xd8")
    with pytest.raises(IndexLoadError, match="not a retrieval index"):
        load_index(tmp_path / "photos")
    (tmp_path / "photos" / MANIFEST).write_text('{"format": "something-else"}', encoding="utf-8")
    with pytest.raises(IndexLoadError, match="not a Helpline retrieval index"):
        load_index(tmp_path / "photos")


def _edit_manifest(index_dir: Path, **changes: object) -> None:
    path = index_dir / MANIFEST
    data = json.loads(path.read_text(encoding="utf-8"))
    data.update(changes)
    path.write_text(json.dumps(data), encoding="utf-8")


def test_corrupt_or_old_manifests_are_refused(built: Path) -> None:
    manifest = built / MANIFEST
    manifest.write_text(manifest.read_text(encoding="utf-8")[:50], encoding="utf-8")
    with pytest.raises(IndexLoadError, match=f"corrupt index manifest .*{MANIFEST}.*run: retrieval index"):
        load_index(built)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"format_version": 0}, "format/tokenizer version 0/"),
        ({"settings": {"bogus": 1}}, "unknown settings"),
        ({"passages": 1}, "manifest says 1"),
        ({"passages_sha256": "0" * 64}, "does not match its manifest"),
    ],
)
def test_inconsistent_manifests_are_refused(built: Path, changes: dict[str, object], message: str) -> None:
    _edit_manifest(built, **changes)
    with pytest.raises(IndexLoadError, match=message):
        load_index(built)


def test_a_truncated_passages_file_is_refused(built: Path) -> None:
    path = built / PASSAGES
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(IndexLoadError, match="does not match"):
        load_index(built)


def test_build_refuses_to_replace_a_foreign_directory(docs: Path, tmp_path: Path) -> None:
    target = tmp_path / "important"
    target.mkdir()
    (target / "thesis.tex").write_text("precious", encoding="utf-8")
    with pytest.raises(RetrievalError, match="refusing to replace"):
        build_index(docs, target)
    assert (target / "thesis.tex").read_text(encoding="utf-8") == "precious"


def test_build_replaces_an_empty_directory_and_errors_on_bad_input(docs: Path, tmp_path: Path) -> None:
    (tmp_path / "index").mkdir()
    build_index(docs, tmp_path / "index")
    assert load_index(tmp_path / "index")
    with pytest.raises(RetrievalError, match="does not exist"):
        build_index(tmp_path / "no-docs", tmp_path / "index")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "a.bin").write_bytes(b"\x00")
    with pytest.raises(RetrievalError, match="no readable documents"):
        build_index(tmp_path / "junk", tmp_path / "index")


def test_the_bundled_documents_index_in_seconds(tmp_path: Path) -> None:
    started = time.perf_counter()
    report = build_index(DOCS, tmp_path / "index")
    index = load_index(tmp_path / "index")
    elapsed = time.perf_counter() - started
    assert report.documents == 106 and report.skipped == [] and len(index) > 500
    assert elapsed < 10, elapsed
    assert "hypoglycemia" in index.search("low blood sugar", top_k=1)[0].passage.text.lower()


def test_a_file_name_that_is_not_utf8_does_not_stop_the_index(docs: Path, tmp_path: Path) -> None:
    Path(os.fsdecode(bytes(docs) + b"/bad-\xff.md")).write_text("# Bad\n\nInsulin text.", encoding="utf-8")
    report = build_index(docs, tmp_path / "index")
    assert report.documents == len(INDEXED)
    assert "bad-\\xff.md" in {s.path for s in load_index(tmp_path / "index").manifest.skipped}


@pytest.mark.parametrize("where", ["{file}/sub", "{file}/a/b", "/proc/helpline-index"])
def test_an_index_that_cannot_be_created_is_a_build_error(docs: Path, tmp_path: Path, where: str) -> None:
    (tmp_path / "file").write_text("not a folder", encoding="utf-8")
    index_dir = Path(where.replace("{file}", str(tmp_path / "file")))
    with pytest.raises(RetrievalError, match=f"cannot create the index {index_dir}"):
        build_index(docs, index_dir)


def test_an_index_of_another_version_is_replaced_and_kept_aside(built: Path, docs: Path) -> None:
    _edit_manifest(built, format_version=99)
    old_folder = built.resolve()
    report = build_index(docs, built)
    assert load_index(built)  # the new one serves
    kept = Path(report.kept_old_index)
    assert kept.parent == built.parent and "v99" in kept.name and not old_folder.exists()
    assert json.loads((kept / MANIFEST).read_text(encoding="utf-8"))["format_version"] == 99
    build_index(docs, built)  # later rebuilds clean up old generations, never the kept one
    assert kept.is_dir()
    assert build_index(docs, built).kept_old_index is None
