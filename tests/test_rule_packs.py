"""The shipped playbook packs in rules/: they check, their own tests pass, every rule is tested firing and not
firing, and their Korean and English templates render with real lead data (Korean names included)."""

from __future__ import annotations

import datetime as dt
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from crmrules import ManualClock, Pipeline, SQLiteStore, load_pack
from crmrules.people import display_name
from crmrules.language.durations import parse_duration
from crmrules.models import Event, OutboxItem
from crmrules.templates import render

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "rules"
# Packs 1-4 (this file's scope); 5-8 are written beside them and covered by the whole-folder tests below.
MY_PACKS = ["lead-scoring", "segmentation", "proposal-contract", "issues-relationship"]
ALL_PACKS = MY_PACKS + ["retention-growth", "pipeline-health", "loyalty", "onsite-offers"]
SEOUL = dt.timezone(dt.timedelta(hours=9))


def crmrules(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "crmrules.cli", *args], capture_output=True, text=True,
                          encoding="utf-8", cwd=ROOT, timeout=600)


def my_paths() -> list[str]:
    return [str(RULES / name) for name in MY_PACKS]


# ------------------------------------------------------------------ check and test, as an admin runs them

def test_packs_1_to_4_check():
    out = crmrules("check", *my_paths())
    assert out.returncode == 0, out.stdout + out.stderr
    assert "ok: 4 pack(s)" in out.stdout


def test_packs_1_to_4_pass_their_own_tests():
    out = crmrules("test", "-v", *my_paths())
    assert out.returncode == 0, out.stdout + out.stderr
    assert "FAILED" not in out.stdout
    passed = int(re.search(r"(\d+) passed", out.stdout).group(1))
    assert passed >= 100
    for name in MY_PACKS:
        assert f"rules/{name}/tests/" in out.stdout, f"{name} has no tests that ran"


def test_the_whole_rules_folder_checks_and_passes():
    """All eight packs together (5-8 come from other authors; this passes once every pack is done)."""

    check = crmrules("check", "rules")
    assert check.returncode == 0, check.stdout + check.stderr
    for name in ALL_PACKS:
        assert (RULES / name / "pack.yaml").is_file(), f"rules/{name} is missing"
    test = crmrules("test", "rules")
    assert test.returncode == 0, test.stdout[-4000:] + test.stderr


def test_the_rules_index_lists_every_pack():
    index = (RULES / "README.md").read_text(encoding="utf-8")
    for name in ALL_PACKS:
        assert f"]({name}/)" in index, f"rules/README.md does not link {name}/"
    for crm_name in ("firstname", "lastname", "hs_email_optout", "FirstName", "LastName", "HasOptedOutOfEmail"):
        assert crm_name in index


# ------------------------------------------------------------------ every rule tested both ways

def _cases(pack_dir: Path) -> list[dict]:
    cases = []
    for file in sorted((pack_dir / "tests").glob("*.yaml")):
        cases += yaml.safe_load(file.read_text(encoding="utf-8"))["tests"]
    return cases


@pytest.mark.parametrize("name", MY_PACKS)
def test_every_rule_has_a_firing_and_a_not_firing_case(name):
    pack = load_pack(RULES / name / "pack.yaml")
    fires, holds = set(), set()
    for case in _cases(RULES / name):
        for exp in case.get("expect") or []:
            if isinstance(exp, dict):
                (fires if exp.get("outcome", "fired") == "fired" else holds).add(exp["rule"])
        holds.update(case.get("expect_not") or [])
    for rule in pack.rules:
        assert rule.id in fires, f"{name}/{rule.id}: no test where it fires"
        assert rule.id in holds, f"{name}/{rule.id}: no test where it does not fire (edge or limit)"


@pytest.mark.parametrize("name", MY_PACKS)
def test_thresholds_are_variables(name):
    """Windows, counts and waits in conditions come from `vars:`, so a team changes "7 days" in one place."""

    text = (RULES / name / "pack.yaml").read_text(encoding="utf-8")
    rules_part = text.split("\nrules:", 1)[1]
    for key in ("within", "after", "for", "at_least", "cooldown"):
        for match in re.finditer(rf"\b{key}: ([^,}}\n]+)", rules_part):
            value = match.group(1).strip().strip('"')
            if key == "at_least" and value == "1":
                continue  # "at least once" is the meaning, not a threshold
            if key == "after" and not re.match(r"^\$\{|^\d", value):
                continue  # `after: blog_read` names an event
            assert value.startswith("${"), f"{name}: `{key}: {value}` should be a variable"


# ------------------------------------------------------------------ templates with real lead data

LEADS = {
    "ko": {"email": "yujin.kim@hanbit-logistics.co.kr", "first_name": "유진", "last_name": "김", "company": "한빛물류",
           "industry": "manufacturing", "locale": "ko", "email_opt_in": True},
    "en": {"email": "sua.choi@hanul-semi.com", "first_name": "수아", "last_name": "최", "company": "Hanul Semiconductor",
           "industry": "semiconductor", "locale": "en", "email_opt_in": True},
}
EVENTS = {
    "page_view": {"path": "/pricing"}, "proposal_requested": {}, "seminar_registered": {"campaign": "spring"},
    "webinar_attended": {}, "contract_signed": {"deal_id": "D-2026-031"}, "ticket_solved": {"ticket_id": "T-1042"},
}


def _context(pack, locale: str, etype: str) -> dict:
    lead = dict(LEADS[locale], id="lead-1", tags=[], score=0)
    lead["name"] = display_name(lead)
    return {"lead": lead, "account": {}, "deal": {}, "rule": {"id": "x", "description": ""},
            "event": dict(EVENTS[etype], type=etype, occurred_at="2026-03-06T07:40:00+00:00"),
            "vars": dict(pack.variables)}


def _templates():
    for name in MY_PACKS:
        pack = load_pack(RULES / name / "pack.yaml")
        for (template, locale) in sorted(pack.templates):
            for etype in EVENTS:
                yield pytest.param(pack, template, locale, etype, id=f"{name}/{template}.{locale}/{etype}")


def test_every_template_has_korean_and_english():
    for name in MY_PACKS:
        pack = load_pack(RULES / name / "pack.yaml")
        names = {t for t, _ in pack.templates}
        for template in names:
            assert {(template, "ko"), (template, "en")} <= set(pack.templates), f"{name}/{template}"


@pytest.mark.parametrize("pack,template,locale,etype", list(_templates()))
def test_templates_render_with_korean_names(pack, template, locale, etype):
    t = pack.templates[(template, locale)]
    context = _context(pack, locale, etype)
    subject, body = render(t.subject, context), render(t.body, context)
    name = "김유진" if locale == "ko" else "최수아"          # Korean names read family name first, no space
    assert subject.startswith(f"{name}님," if locale == "ko" else f"{name},"), subject
    assert name in body
    for text in (subject, body):
        assert "{{" not in text and "{%" not in text and "None" not in text
        assert not any("  " in line.strip() for line in text.splitlines()), text
    hangul = sum("\uac00" <= ch <= "\ud7a3" for ch in body.replace(name, ""))
    assert (hangul > 40) if locale == "ko" else (hangul == 0), "body is not in its locale's language"


def test_advertising_templates_carry_sender_and_unsubscribe():
    pack = load_pack(RULES / "segmentation" / "pack.yaml")
    for (template, locale), t in pack.templates.items():
        body = render(t.body, _context(pack, locale, "page_view"))
        assert "https://nextsales.co.kr/unsubscribe" in body, template
        assert ("넥스트세일즈 (02-6000-1234" if locale == "ko" else "NextSales (02-6000-1234") in body, template


def test_template_text_follows_the_event():
    pack = load_pack(RULES / "segmentation" / "pack.yaml")
    t = pack.templates[("first-high-intent", "ko")]
    assert "요금 안내를 꼼꼼히" in render(t.body, _context(pack, "ko", "page_view"))
    assert "제안서를 요청해 주셔서" in render(t.body, _context(pack, "ko", "proposal_requested"))
    checklist = load_pack(RULES / "proposal-contract" / "pack.yaml")
    body = render(checklist.templates[("delivery-checklist", "ko")].body, _context(checklist, "ko", "contract_signed"))
    assert "(계약 D-2026-031)" in body


# ------------------------------------------------------------------ the first email: within 30 minutes, not at night

def _replay(pack_name: str, lead: dict, events: list[tuple[dt.datetime, str, dict]], tmp_path: Path,
            until: dt.datetime | None = None):
    pack = load_pack(RULES / pack_name / "pack.yaml")
    store = SQLiteStore(tmp_path / "s.sqlite")
    start = events[0][0] - dt.timedelta(minutes=5)
    batch = [Event(id="lead", type="record_update", occurred_at=start, subject={"ids": {"email": lead["email"]}},
                   properties=lead)]
    batch += [Event(id=f"e{i}", type=etype, occurred_at=at, subject={"ids": {"email": lead["email"]}}, properties=props)
              for i, (at, etype, props) in enumerate(events)]
    pipeline = Pipeline(store, [pack], clock=ManualClock(start.timestamp()))
    pipeline.replay(batch, until=until.timestamp() if until else None)
    items = [OutboxItem.model_validate_json(r["body"]) for r in store.outbox_rows()]
    store.close()
    return items


def test_two_pricing_views_by_day_send_the_first_email_within_30_minutes(tmp_path):
    assert parse_duration(load_pack(RULES / "segmentation" / "pack.yaml").variables["first_email_delay"]) <= 1800
    second = dt.datetime(2026, 3, 6, 16, 40, tzinfo=SEOUL)
    lead = dict(LEADS["ko"], industry="logistics")  # not the focus industry: only the high-intent email
    items = _replay("segmentation", lead, [(second - dt.timedelta(days=2), "page_view", {"path": "/pricing"}),
                                                  (second, "page_view", {"path": "/pricing"})], tmp_path)
    mails = [i for i in items if i.action.type == "message"]
    assert len(mails) == 1
    assert 0 < mails[0].due_at - second.timestamp() <= 30 * 60
    assert mails[0].action.subject == "(광고) 김유진님, 맞춤 견적과 데모를 준비해 드릴까요?"


def test_two_pricing_views_at_night_wait_for_8am_in_korea(tmp_path):
    second = dt.datetime(2026, 3, 6, 22, 30, tzinfo=SEOUL)
    items = _replay("segmentation", LEADS["ko"], [(second - dt.timedelta(hours=1), "page_view", {"path": "/pricing"}),
                                                  (second, "page_view", {"path": "/pricing"})], tmp_path)
    mail = next(i for i in items if i.action.type == "message")
    assert dt.datetime.fromtimestamp(mail.due_at, SEOUL) == dt.datetime(2026, 3, 7, 8, 0, tzinfo=SEOUL)


def test_the_survey_goes_three_days_after_the_solve(tmp_path):
    solved = dt.datetime(2026, 3, 10, 16, 0, tzinfo=SEOUL)
    lead = dict(LEADS["ko"], email="haneul.kang@garam-retail.co.kr", first_name="하늘", last_name="강")
    items = _replay("issues-relationship", lead, [(solved, "ticket_solved", {"ticket_id": "T-1042"})], tmp_path)
    survey = next(i for i in items if i.action.type == "message")
    assert survey.due_at - solved.timestamp() == 3 * 86400
    assert survey.action.subject == "강하늘님, 문의 처리에 만족하셨나요?"
    assert "최근 문의(티켓 T-1042)가 해결되어" in survey.action.body
