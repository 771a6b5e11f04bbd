"""`crmrules demo`: the example data through the shipped packs puts 김유진 and 김민재 first for an immediate sales
call and 정재훈 in the nurture/retargeting segment (issue 2's acceptance), with the actions each lead got."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from crmrules import SQLiteStore

ROOT = Path(__file__).resolve().parent.parent
CONTACT_NOW = "즉시 영업 연락 / contact now"


def crmrules(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "crmrules.cli", *args], capture_output=True, text=True,
                          encoding="utf-8", cwd=cwd, timeout=300)


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> tuple[str, Path]:
    store = tmp_path_factory.mktemp("demo") / "demo.sqlite"
    out = crmrules("demo", "--store", str(store))
    assert out.returncode == 0, out.stderr
    return out.stdout, store


def table(text: str) -> list[dict[str, str]]:
    """The prioritised lead table: rank, name, score, step, segment, tags."""

    lines = text.split("우선순위 리드 / prioritised leads", 1)[1].split("리드별 조치", 1)[0].splitlines()
    rows = []
    for line in lines:
        if not re.match(r"^\d+\s", line):
            continue
        cells = re.split(r"\s{2,}", line.strip())
        rows.append(dict(zip(["rank", "name", "score", "step", "segment", "tags"], cells)))
    return rows


def section(text: str, name: str) -> str:
    """One lead's block in "what each lead got"."""

    body = text.split("리드별 조치 / what each lead got", 1)[1]
    blocks = re.split(r"\n(?=\d+\. )", body)
    found = [b for b in blocks if re.match(rf"\d+\. {name}\b", b)]
    assert found, f"no block for {name}"
    return found[0]


def test_kim_yujin_and_kim_minjae_are_the_top_two_for_an_immediate_sales_call(demo):
    rows = table(demo[0])
    assert len(rows) == 8
    assert {rows[0]["name"], rows[1]["name"]} == {"김유진", "김민재"}
    assert rows[0]["step"] == rows[1]["step"] == CONTACT_NOW
    assert [r["name"] for r in rows if r["step"] == CONTACT_NOW] == [rows[0]["name"], rows[1]["name"]]
    assert all(float(r["score"]) >= 80 for r in rows[:2])
    assert "영업 이관" in rows[0]["tags"] and "영업 이관" in rows[1]["tags"]


def test_jung_jaehoon_goes_to_the_nurture_retargeting_segment(demo):
    rows = table(demo[0])
    jaehoon = next(r for r in rows if r["name"] == "정재훈")
    assert "nurture/retargeting" in jaehoon["segment"]
    assert "추가 육성 필요" in jaehoon["tags"]
    assert "육성·리타겟팅" in jaehoon["step"]
    assert jaehoon["rank"] == str(len(rows))  # read a blog post and left: last in line


def test_the_others_land_in_between(demo):
    rows = {r["name"]: r for r in table(demo[0])}
    assert rows["박지훈"]["step"].startswith("전화 연락")           # high interest, but no email consent
    assert rows["최수아"]["step"].startswith("첫 메일 후속")        # high interest, English first email sent
    assert "seminar" in rows["이서연"]["segment"]
    assert rows["강하늘"]["step"].startswith("반복 이슈")           # a customer with a recurring login issue
    assert "customer" in rows["오지현"]["segment"]


def test_each_lead_shows_its_actions_with_rendered_subjects(demo):
    text = demo[0]
    yujin = section(text, "김유진")
    assert "(광고) 김유진님, 맞춤 견적과 데모를 준비해 드릴까요? → 03-06 16:50 KST 발송" in yujin
    assert "빠른 대응: 김유진님께 바로 연락 (minsu.lee, 기한 03-05 11:32 KST)" in yujin
    assert "김유진님 영업 연락 (점수 85)" in yujin
    assert "제안서 열람: 김유진님께 오늘 연락" in yujin
    minjae = section(text, "김민재")
    assert "(광고) 김민재님, 제조업 고객사 도입 사례를 모았습니다" in minjae
    assert "(광고) 김민재님, 세미나 내용을 고객 사례로 상담해 드립니다" in minjae
    assert "김민재님 영업 연락 (점수 95)" in minjae
    # decided at 22:41, an advertising email in Korean waits for 08:00 (Network Act art. 50)
    jaehoon = section(text, "정재훈")
    assert "(광고) 정재훈님, CRM 자동화 무료 가이드를 보내드립니다 → 03-09 08:00 KST 발송" in jaehoon
    assert "nurture_track=retargeting" in jaehoon
    sua = section(text, "최수아")
    assert "최수아, shall we prepare a quote or a demo for you?" in sua
    assert "(광고)" not in sua
    haneul = section(text, "강하늘")
    assert "강하늘님, 계약서 서명을 기다리고 있습니다" in haneul          # opened 03-02, signed 03-04: reminder
    assert "[에스컬레이션] 강하늘님 문의 T-1077, 첫 답변 기한(1h) 초과" in haneul  # the timer names its ticket
    assert "반복 이슈 점검: 강하늘님 - login" in haneul
    assert "강하늘님, 문의 처리에 만족하셨나요? → 03-13 16:00 KST 발송" in haneul
    jihyun = section(text, "오지현")
    assert "업셀 제안 계획: 오지현님" in jihyun
    assert "견적 승인: 오지현 (미래에듀), 12,000,000원" in jihyun
    assert "계약 서명을 기다리고" not in jihyun                       # signed the same day: no reminder
    jihoon = section(text, "박지훈")
    assert "메일" not in jihoon.split("\n", 1)[1]                       # no consent: no email at all


def test_the_store_keeps_the_decisions_for_explain(demo):
    _text, path = demo
    store = SQLiteStore(path)
    try:
        fired = {(d.pack, d.rule) for d in store.all_decisions() if d.outcome == "fired"}
        entity = store.find_entity("jaehoon.jung@seoul-mart.co.kr")
        mine = {d.rule for d in store.decisions_of(entity) if d.outcome == "fired"}
    finally:
        store.close()
    assert ("segmentation", "needs-nurturing-tag") in fired
    assert {"blog-read-and-left", "needs-nurturing-tag", "low-intent-first-email"} <= mine


def test_the_demo_runs_from_anywhere_without_a_store_and_leaves_nothing_behind(tmp_path):
    out = crmrules("demo", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "즉시 영업 연락 / contact now" in out.stdout
    assert list(tmp_path.iterdir()) == []
