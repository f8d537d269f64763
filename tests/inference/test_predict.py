"""predict-normal on real image files: every input gets its own output or a named error, nothing is
overwritten, and an oversized image is refused from its header."""

import struct
import zlib

import numpy as np
import pytest
import torch

from hi3dgen.config import build
from hi3dgen.data import codec
from hi3dgen.inference.predict import Predictor, predict_files
from hi3dgen.training.nirne import NiRNERunConfig, build_model


@pytest.fixture(scope="module")
def model():
    return build_model(build(NiRNERunConfig, "tiny")).eval()


def write_image(path, value: int, size: int = 12):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(codec.encode_rgb(np.full((size, size + 3, 3), value, np.uint8)))
    return path


def gray_png(path, side: int):
    """A valid 8-bit gray PNG of side x side black pixels, compressed row by row (a few hundred KB
    for 10000²)."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    z, row, idat = zlib.compressobj(9), bytes(side + 1), []
    for _ in range(side):
        idat.append(z.compress(row))
    idat.append(z.flush())
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", b"".join(idat))
        + chunk(b"IEND", b"")
    )
    return path


def test_every_input_gets_its_own_output_or_a_named_error(model, tmp_path):
    src, out = tmp_path / "src", tmp_path / "out"
    good = [
        write_image(src / "a" / "x.png", 10),
        write_image(src / "b" / "x.png", 90),
        write_image(src / "x.png", 170),
        write_image(src / "y.png", 40),
        write_image(src / "y.jpg", 200),
    ]
    empty = src / "empty.png"
    empty.write_bytes(b"")
    huge = gray_png(src / "huge.png", 10_000)
    inputs = [empty, *good, huge, good[0]]  # the empty one first: the rest must still be written
    results = predict_files(model, [str(p) for p in inputs], out)
    errors = {i: e for i, (_, _, e) in enumerate(results) if e}
    assert sorted(errors) == [0, 6, 7]
    assert "empty.png: not a readable image (the file is empty)" in errors[0]
    assert "10000x10000 is 100.0 megapixels, more than the limit" in errors[6]
    assert "given twice" in errors[7]
    outputs = [out / n for n in ("a/x", "b/x", "x", "y.png", "y.jpg")]
    assert [r[1] for r in results[1:6]] == [str(o) + ".normal.png" for o in outputs]
    maps = [(o.parent / (o.name + ".normal.png")).read_bytes() for o in outputs]
    assert len(set(maps)) == len(maps)  # five inputs, five different maps: none overwrote another
    assert all((o.parent / (o.name + ".preview.png")).exists() for o in outputs)

    again = predict_files(model, [str(p) for p in good], out)
    assert all(e and "exists; not overwritten" in e for _, _, e in again)
    assert [(o.parent / (o.name + ".normal.png")).read_bytes() for o in outputs] == maps
    write_image(src / "a" / "x.png", 10, size=20)  # another image: another map
    assert all(e is None for _, _, e in predict_files(model, [str(p) for p in good], out, overwrite=True))
    assert (out / "a" / "x.normal.png").read_bytes() != maps[0]


def test_predictor_gives_the_models_normals(model):
    x = torch.rand(1, 3, 20, 28, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(Predictor(model)(x), model.predict(x))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the CUDA-graph path needs a GPU (run on the GPU machine)")
def test_on_cuda_the_predictor_replays_one_graph_per_size(model):
    gpu = Predictor(model.cuda())
    eager = Predictor(model, graphs=False)
    for shape in ((1, 3, 20, 28), (1, 3, 32, 32), (1, 3, 20, 28)):
        x = torch.rand(*shape, device="cuda")
        assert torch.allclose(gpu(x), eager(x), atol=1e-2)
    assert len(gpu._captured) == 2
