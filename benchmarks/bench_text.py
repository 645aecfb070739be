"""Burned-in text: recall and false redaction on the planted-text corpus, and screening speed (issue 19).

    python benchmarks/bench_text.py [--n 24] [--out benchmarks/results/text_<date>.md]

Recall: after redaction, neither judge (Tesseract and RapidOCR, several views and 4 orientations,
``tests/text_corpus.judge_read``) reads any planted identifying token. False redaction: a box
on a text-free control. Speed: detector screening per 512x512 slice and per 1200x900 frame.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from text_corpus import judge_read, make_corpus, reads_token  # noqa: E402

from neurodeid.redact import RedactionConfig, redact_frames  # noqa: E402
from neurodeid.redact.detect import region_words  # noqa: E402


def run_sample(s, cfg):
    before = [t for t in s.tokens if any(reads_token(judge_read(f, s.photometric), t) for f in s.frames)]
    t0 = time.perf_counter()
    out, red = redact_frames(s.frames, s.photometric, cfg, s.tokens)
    secs = time.perf_counter() - t0
    after = [t for t in s.tokens if any(reads_token(judge_read(f, s.photometric), t) for f in out)]
    outside = np.ones(s.frames.shape[1:3], bool)
    for x0, y0, x1, y1 in red.rule_boxes + red.ocr_boxes:
        outside[y0:y1, x0:x1] = False
    identical = bool(np.array_equal(out[:, outside], s.frames[:, outside])) if out.shape == s.frames.shape else None
    return dict(name=s.name, status=red.result["status"], boxes=red.result["boxes"], read_before=len(before),
                tokens=len(s.tokens), read_after=after, secs=secs, identical_outside=identical)


def screening_speed(reps=5):
    rng = np.random.default_rng(0)
    out = {}
    for name, shape in (("512x512 slice", (512, 512)), ("1200x900 US frame (RGB)", (900, 1200, 3))):
        a = (rng.normal(100, 20, shape)).clip(0, 255).astype(np.uint8)
        region_words(a[..., 0] if a.ndim == 3 else a, scale=1, contrast=False)  # warm up
        t0 = time.perf_counter()
        for _ in range(reps):
            region_words(a, "RGB" if a.ndim == 3 else "MONOCHROME2", scale=1, contrast=False)
        out[name] = (time.perf_counter() - t0) / reps * 1000
    return out


def volume_screening(folder):
    """Wall and CPU seconds of the text stage screening one real volume series (``screen`` mode)."""
    import tempfile

    from text_corpus import SHARED

    from neurodeid.redact.series import run_series

    src = SHARED / "dicom" / folder
    if not src.is_dir():
        return None
    with tempfile.TemporaryDirectory() as d:
        w, c = time.perf_counter(), time.process_time()
        r = run_series(src, Path(d) / "out", Path(d) / "r.json", RedactionConfig(), [], mode="screen")
        return dict(folder=folder, files=len(r["files"]), status=r["status"], screened=r.get("screened", []),
                    wall=time.perf_counter() - w, cpu=time.process_time() - c)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=24)
    ap.add_argument("--out", default=f"benchmarks/results/text_{datetime.date.today()}.md")
    args = ap.parse_args(argv)
    cfg = RedactionConfig(ocr_threads=2)
    samples, controls = make_corpus(args.n)
    rows = [run_sample(s, cfg) for s in samples]
    ctrl = [run_sample(s, cfg) for s in controls]
    speed = screening_speed()
    lines = [f"# Burned-in text corpus ({datetime.date.today()}, `python benchmarks/bench_text.py --n {args.n}`)", "",
             "| sample | status | boxes | tokens read before / planted | tokens read after | pixels outside boxes identical | s |",
             "|---|---|---|---|---|---|---|"]
    for r in rows + ctrl:
        lines.append(f"| {r['name']} | {r['status']} | {r['boxes']} | {r['read_before']}/{r['tokens']} | "
                     f"{', '.join(r['read_after']) or '-'} | {r['identical_outside']} | {r['secs']:.1f} |")
    leaked = [r for r in rows if r["read_after"]]
    valid = [r for r in rows if r["read_before"]]
    fp = [r for r in ctrl if r["boxes"]]
    lines += ["", f"- recall: {len(rows) - len(leaked)} of {len(rows)} samples with no planted token read after "
              f"redaction ({len(valid)} samples had a token readable before)",
              f"- samples withheld (FAIL): {sum(r['status'] != 'PASS' for r in rows)}",
              f"- false redaction: {len(fp)} of {len(ctrl)} controls got a box ({', '.join(r['name'] for r in fp) or 'none'})"]
    lines += [f"- screening (detector, native size, one thread): {k} {v:.0f} ms" for k, v in speed.items()]
    vol = volume_screening("dcm_qa_deident/In")
    if vol:
        lines.append(f"- a real {vol['files']}-slice 256x256 GE T1 volume (dcm_qa_deident/In) screened: "
                     f"{vol['wall']:.1f} s wall, {vol['cpu']:.1f} s CPU, {vol['status']}"
                     f"{' (text found: ' + '; '.join(vol['screened'][:3]) + ')' if vol['screened'] else ', no text found'}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
