import json

from oreal.cli import main


def write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_grade_command_writes_verdicts_and_summary(tmp_path, capsys):
    src = tmp_path / "answers.jsonl"
    write(src, [
        {"response": r"so \boxed{4}", "gold": "4"},
        {"response": r"\boxed{5}", "gold": "4", "problem": "2+2?"},
        {"response": "no idea", "gold": "4"},
        {"response": r"\boxed{4", "gold": "4", "finish_reason": "length"},
    ])
    assert main(["grade", str(src)]) == 0
    out = [json.loads(l) for l in (tmp_path / "answers.graded.jsonl").read_text().splitlines()]
    assert [(r["correct"], r["reason"]) for r in out] == [(True, "correct"), (False, "incorrect"), (False, "no_answer"), (False, "truncated")]
    assert out[1]["problem"] == "2+2?" and out[0]["extracted"] == "4"
    printed = capsys.readouterr().out
    assert "4 answers graded, 1 correct" in printed
    assert "incorrect" in printed and "25.0%" in printed


def test_malformed_rows_name_file_line_and_field(tmp_path, capsys):
    src = tmp_path / "bad.jsonl"
    src.write_text(json.dumps({"response": "x", "gold": "1"}) + "\n" + json.dumps({"response": "x"}) + "\n")
    assert main(["grade", str(src)]) == 2
    assert f"{src}:2: field 'gold' must be a string, it is missing" in capsys.readouterr().err
    src.write_text("{not json\n")
    assert main(["grade", str(src)]) == 2
    assert f"{src}:1: not valid JSON" in capsys.readouterr().err
    assert not (tmp_path / "bad.graded.jsonl").exists()
