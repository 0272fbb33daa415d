"""Tests of the missing-modality protocol, the generated world, metrics and the real-format readers."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from reprolab.core.errors import DataError
from reprolab.missing_prompts.data import (
    CLS,
    MMIMDB_GENRES,
    SEP,
    GlyphWordWorld,
    WordVocab,
    apply_missing,
    draw_missing_table,
    load_missing_table,
    read_food101,
    read_hateful_memes,
    read_mmimdb,
    records_to_tensors,
    save_missing_table,
)
from reprolab.missing_prompts.train import _hard_negatives, accuracy, auroc, f1_macro


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_missing_table_identical_for_same_seed_and_saved(tmp_path):
    a = draw_missing_table(200, 0.7, "both", _gen(5))
    b = draw_missing_table(200, 0.7, "both", _gen(5))
    c = draw_missing_table(200, 0.7, "both", _gen(6))
    assert torch.equal(a, b) and not torch.equal(a, c)
    path = save_missing_table(tmp_path / "t.json", a, rate=0.7, missing_type="both", seed=5)
    assert torch.equal(load_missing_table(path), a)


@pytest.mark.parametrize(("kind", "text", "image"), [("text", 70, 0), ("image", 0, 70), ("both", 35, 35)])
def test_missing_table_counts(kind, text, image):
    table = draw_missing_table(100, 0.7, kind, _gen())
    assert int((table == 1).sum()) == text and int((table == 2).sum()) == image
    assert int((table == 0).sum()) == 30  # eta = fraction of samples that miss a modality


def test_missing_table_bad_arguments():
    with pytest.raises(ValueError, match="rate"):
        draw_missing_table(10, 1.5, "both", _gen())
    with pytest.raises(ValueError, match="missing_type"):
        draw_missing_table(10, 0.5, "audio", _gen())


def test_corrupt_missing_table_names_the_file(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text("{not json")
    with pytest.raises(DataError, match="bad.json"):
        load_missing_table(path)


def test_apply_missing_uses_the_paper_dummy_inputs():
    world = GlyphWordWorld()
    data = world.single_label(6, 8, 0.0, _gen())
    out = apply_missing(data, torch.tensor([0, 1, 2, 0, 1, 2]))
    assert torch.equal(out.input_ids[0], data.input_ids[0]) and torch.equal(out.pixel_values[0], data.pixel_values[0])
    assert out.input_ids[1, :2].tolist() == [CLS, SEP] and out.input_ids[1, 2:].eq(0).all()
    assert out.text_mask[1].tolist() == [1, 1] + [0] * (out.text_mask.shape[1] - 2)
    assert torch.equal(out.pixel_values[1], data.pixel_values[1])
    assert out.pixel_values[2].eq(1.0).all() and torch.equal(out.input_ids[2], data.input_ids[2])
    assert torch.equal(data.input_ids[1], world.single_label(6, 8, 0.0, _gen()).input_ids[1])  # input not modified


def test_single_label_world_codes():
    world = GlyphWordWorld(pixel_noise=0.0, n_distractors=0)
    data = world.single_label(64, 8, 0.0, _gen(1))
    for y, ids in zip(data.labels.tolist(), data.input_ids):
        words = [int(t) - 4 for t in ids if world.is_code_word(t)]
        assert words == [min(y, 6)]  # word min(y, C - 2)
    # image of class y contains the glyph max(y - 1, 0) exactly (noise-free): find it by pattern matching
    y = int(data.labels[0])
    img = data.pixel_values[0]
    code = max(y - 1, 0)
    glyph = world.colours[code][:, None, None] * world.patterns[code][None]
    cells = [img[:, r : r + 4, c : c + 4] for r in range(0, 16, 4) for c in range(0, 16, 4)]
    assert any(torch.allclose(cell, glyph) for cell in cells)


@pytest.mark.parametrize("shift", [1, 0])
def test_multi_label_world_visibility(shift):
    """Label 0 image only, label 7 text only, labels 1-6 in both: glyph j for j <= 6, word j - shift for j >= 1."""
    world = GlyphWordWorld(pixel_noise=0.0, n_distractors=0)
    data = world.multi_label(50, 0.0, _gen(2), word_shift=shift)
    assert data.multi_label and data.labels.sum(1).min() >= 1
    cells = [(r, c) for r in range(0, 16, 4) for c in range(0, 16, 4)]
    for row, ids, img in zip(data.labels, data.input_ids, data.pixel_values):
        words = sorted(int(t) - 4 for t in ids if world.is_code_word(t))
        assert words == [j - shift for j in range(1, 8) if row[j] == 1]  # labels 1-7 are written as words
        shown = set()
        for r, c in cells:
            for code in range(world.n_codes):
                glyph = world.colours[code][:, None, None] * world.patterns[code][None]
                if torch.allclose(img[:, r : r + 4, c : c + 4], glyph):
                    shown.add(code)
        assert shown == {j for j in range(7) if row[j] == 1}  # labels 0-6 are drawn as glyph j
    assert data.labels[:, 0].sum() > 0 and data.labels[:, 7].sum() > 0 and data.labels[:, 1:7].sum() > 0


def test_multi_label_noise_stays_in_each_modality_code_range():
    world = GlyphWordWorld(pixel_noise=0.0, n_distractors=0, n_codes=24)
    data = world.multi_label(200, 1.0, _gen(3))
    words = [int(t) - 4 for ids in data.input_ids for t in ids if world.is_code_word(t)]
    assert words and min(words) >= 0 and max(words) <= 6
    with pytest.raises(ValueError, match="n_codes >= 8"):
        GlyphWordWorld(n_codes=5).multi_label(4, 0.0, _gen())
    with pytest.raises(ValueError, match="word_shift"):
        world.multi_label(4, 0.0, _gen(), word_shift=2)


def test_hard_negatives_swap_exactly_one_code_word_for_an_absent_code():
    world = GlyphWordWorld(n_codes=12)
    data, codes = world.pretraining_pool(40, _gen(1))
    idx = torch.arange(40)
    swap = torch.arange(40) % 2 == 0
    ids, mask = _hard_negatives(world, data, codes, idx, swap, _gen(2))
    assert torch.equal(mask, data.text_mask) and torch.equal(ids[~swap], data.input_ids[~swap])
    for i in torch.nonzero(swap).flatten().tolist():
        changed = torch.nonzero(ids[i] != data.input_ids[i]).flatten()
        assert len(changed) == 1 and world.is_code_word(data.input_ids[i, changed]).all()
        new_code = int(ids[i, changed]) - world.code_word(0)
        assert 0 <= new_code < 12 and codes[i, new_code] == 0  # the new word's glyph is not in the image
    assert world.filler_ids() == list(range(4 + 12, 4 + 12 + world.n_fillers))
    assert not world.is_code_word(torch.tensor(world.filler_ids())).any()


def test_metrics_hand_computed():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 0.0], [0.0, 2.0]])
    labels = torch.tensor([0, 0, 0, 1])
    assert accuracy(logits, labels) == pytest.approx(75.0)
    # scores = l1 - l0: [-2, 1, -3, 2]; positive 2 beats all three negatives -> AUROC 100
    assert auroc(logits, labels) == pytest.approx(100.0)
    multi = torch.tensor([[1.0, 1.0], [1.0, 0.0], [0.0, 0.0]])
    logits_m = torch.tensor([[5.0, -5.0], [5.0, -5.0], [5.0, -5.0]])
    # label 0: tp=2 fp=1 fn=0 -> F1 = 4/5; label 1: tp=0 fn=1 -> 0; macro = 40
    assert f1_macro(logits_m, multi) == pytest.approx(40.0)


# ------------------------------------------------------------------------------------------------
# Real formats on fabricated fixtures
# ------------------------------------------------------------------------------------------------
def _image(path, colour=(255, 0, 0)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (10, 7), colour).save(path)


def test_read_mmimdb(tmp_path):
    (tmp_path / "dataset").mkdir()
    (tmp_path / "split.json").write_text(json.dumps({"train": ["001"], "dev": [], "test": ["002"]}))
    (tmp_path / "dataset/001.json").write_text(
        json.dumps({"genres": ["Drama", "Comedy"], "plot": ["A plot.", "Other."]})
    )
    (tmp_path / "dataset/002.json").write_text(json.dumps({"genres": ["Sci-Fi"], "plot": ["Space."]}))
    _image(tmp_path / "dataset/001.jpeg")
    _image(tmp_path / "dataset/002.jpeg", (0, 0, 255))
    records = read_mmimdb(tmp_path, "train")
    assert records[0].label == (0, 1) and records[0].text == "A plot."
    vocab = WordVocab.build([r.text for r in records])
    data = records_to_tensors(records + read_mmimdb(tmp_path, "test"), vocab.encode, image_size=4, max_text_len=6,
                              n_labels=len(MMIMDB_GENRES), multi_label=True)  # fmt: skip
    assert data.pixel_values.shape == (2, 3, 4, 4)
    assert torch.allclose(data.pixel_values[0, 0], torch.ones(4, 4), atol=0.05)  # red (JPEG) -> R ~ 1, B ~ -1
    assert torch.allclose(data.pixel_values[0, 2], -torch.ones(4, 4), atol=0.05)
    assert data.labels[1, MMIMDB_GENRES.index("Sci-Fi")] == 1 and data.labels[1].sum() == 1
    assert data.input_ids[0, :4].tolist() == [CLS, vocab.stoi["a"], vocab.stoi["plot"], SEP]


def test_read_mmimdb_errors_name_the_file(tmp_path):
    (tmp_path / "dataset").mkdir()
    (tmp_path / "split.json").write_text(json.dumps({"train": ["001"]}))
    (tmp_path / "dataset/001.json").write_text('{"genres": ["Drama"],\n "plot": ')
    with pytest.raises(DataError, match=r"001\.json:2"):
        read_mmimdb(tmp_path, "train")
    with pytest.raises(DataError, match="'test'"):
        read_mmimdb(tmp_path, "test")


def test_read_food101(tmp_path):
    for cls in ("apple_pie", "pizza"):
        _image(tmp_path / "images/train" / cls / f"{cls}_0.jpg")
    (tmp_path / "texts").mkdir()
    (tmp_path / "texts/train_titles.csv").write_text(
        'apple_pie_0.jpg,"Best apple pie, ever",apple_pie\npizza_0.jpg,Pizza night,pizza\n'
    )
    records, classes = read_food101(tmp_path, "train")
    assert classes == ["apple_pie", "pizza"]
    assert [r.label for r in records] == [0, 1] and records[0].text == "Best apple pie, ever"
    (tmp_path / "texts/train_titles.csv").write_text("pizza_0.jpg,Pizza night,pizza\nbad_row,only two\n")
    with pytest.raises(DataError, match="train_titles.csv:2"):
        read_food101(tmp_path, "train")
    (tmp_path / "texts/train_titles.csv").write_text("x.jpg,text,sushi\n")
    with pytest.raises(DataError, match="sushi"):
        read_food101(tmp_path, "train")


def test_read_hateful_memes(tmp_path):
    _image(tmp_path / "img/01.png")
    lines = [{"id": 1, "img": "img/01.png", "label": 1, "text": "a meme"}]
    (tmp_path / "train.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    records = read_hateful_memes(tmp_path, "train")
    assert records[0].label == 1 and records[0].image == tmp_path / "img/01.png"
    (tmp_path / "dev_seen.jsonl").write_text(
        json.dumps(lines[0]) + '\n{"id": 2, "img": "x.png", "label": 3, "text": ""}\n'
    )
    with pytest.raises(DataError, match="dev_seen.jsonl:2"):
        read_hateful_memes(tmp_path, "dev_seen")


def test_unreadable_image_names_the_file(tmp_path):
    from reprolab.missing_prompts.data import Record

    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(DataError, match="broken.png"):
        records_to_tensors([Record(bad, "x", 0)], WordVocab([]).encode, image_size=4, max_text_len=4, n_labels=2,
                           multi_label=False)  # fmt: skip
