from __future__ import annotations

from pathlib import Path

from log import files


def test_segment_names_sort_like_offsets_and_parse_back(tmp_path: Path) -> None:
    for base in (0, 7, 10**12, 2**63 - 1):
        name = files.log_file(tmp_path, base).name
        assert len(name) == 24 and files.offset_from_name(name) == base
    for base in (100, 9, 20):
        files.log_file(tmp_path, base).touch()
    (tmp_path / "junk.log").touch()
    (tmp_path / "00000000000000000009.index").touch()
    assert files.segment_bases(tmp_path) == [9, 20, 100]


def test_group_names_of_any_text_map_to_files_and_back(tmp_path: Path) -> None:
    for group in ("search", "wh/../x", "ü ß", "a.json"):
        path = files.group_file(tmp_path, group)
        assert path.parent == files.groups_dir(tmp_path) and "/" not in path.name
        assert files.group_from_file(path) == group
    assert files.group_from_file(tmp_path / "notes.txt") is None
    assert files.group_from_file(tmp_path / "zz.json") is None


def test_topic_names_follow_kafkas_rule() -> None:
    assert files.TOPIC_NAME.match("shop.public.orders")
    assert files.TOPIC_NAME.match("a_b-c.1")
    assert not files.TOPIC_NAME.match("a/b")
    assert not files.TOPIC_NAME.match("")
    assert not files.TOPIC_NAME.match("x" * 250)
