"""Atomic writes (``idplan.envs.atomic``): the target holds the old content or the new, never a part."""

import os

import pytest

from idplan.envs.atomic import atomic_path, atomic_write_bytes, atomic_write_text


def test_atomic_write_replaces_the_file_and_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "summary.json"
    atomic_write_text(target, '{"old": 1}')
    atomic_write_text(target, '{"new": 2}')
    assert target.read_text() == '{"new": 2}'
    assert os.listdir(tmp_path) == ["summary.json"]
    plain = tmp_path / "plain"
    plain.write_bytes(b"")
    assert target.stat().st_mode == plain.stat().st_mode  # the umask's permissions, as open() gives


@pytest.mark.parametrize("error", [RuntimeError("disk full"), KeyboardInterrupt()])
def test_a_writer_that_fails_midway_leaves_the_old_file_whole(tmp_path, error):
    target = tmp_path / "checkpoint.pt"
    atomic_write_bytes(target, b"old checkpoint")
    with pytest.raises(type(error)):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half of a new")
            raise error
    assert target.read_bytes() == b"old checkpoint"
    assert os.listdir(tmp_path) == ["checkpoint.pt"]


def test_the_temporary_path_keeps_the_suffix_so_savefig_picks_the_format(tmp_path):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1, 1))
    ax.plot([0, 1], [1, 0])
    for name, magic in (("figure.png", b"\x89PNG"), ("figure.pdf", b"%PDF")):
        with atomic_path(tmp_path / name) as tmp:
            assert tmp.parent == tmp_path and tmp.suffix == os.path.splitext(name)[1]
            fig.savefig(tmp)
        assert (tmp_path / name).read_bytes().startswith(magic)
    plt.close(fig)
    assert sorted(os.listdir(tmp_path)) == ["figure.pdf", "figure.png"]
