#!/usr/bin/env python3
"""Ports an installed autobahntestsuite (Python 2 code) to Python 3.

Run after `python3 -m lib2to3 -w -n <package dir>`; lib2to3 does the syntax
(print, except, relative imports, dict methods). This script does what
lib2to3 cannot: Python 2 byte strings.

In Python 2 a plain literal such as '\\xfe' or 'µ' (in a UTF-8 source file)
is a byte string; after lib2to3 it is a text string of other code points,
and the suite would send and expect different bytes than it was written
for. So, in the test case modules, every plain literal that holds a \\x or
octal escape or a non-ASCII character becomes the bytes literal Python 2
meant (non-ASCII source characters become their UTF-8 bytes). Literals of
plain ASCII are the same bytes either way; they are encoded at the two
boundaries, where a payload is sent and where received events are compared
with the expected ones (fixes.py).

Usage: py3port.py <autobahntestsuite package dir>
Fails when a file it expects is missing, so a new suite version that moved
things is noticed rather than run half ported.
"""

import io
import pathlib
import re
import sys
import tokenize

ESCAPE = re.compile(r"\\(x[0-9a-fA-F]{2}|[0-7]{1,3})")


def py2_bytes_literal(token):
    """The bytes literal a Python 2 plain string literal meant, or None."""
    match = re.match(r"([A-Za-z]*)('''|\"\"\"|'|\")", token)
    prefix, quote = match.group(1), match.group(2)
    if prefix.lower() not in ("",):
        return None  # u'', b'', r'': leave alone
    body = token[len(prefix) + len(quote) : -len(quote)]
    non_ascii = any(ord(c) > 0x7F for c in body)
    if not non_ascii and not ESCAPE.search(body):
        return None
    # Non-ASCII source characters were their UTF-8 bytes in Python 2.
    body = "".join(c if ord(c) < 0x80 else "".join("\\x%02x" % b for b in c.encode("utf-8")) for c in body)
    return "b" + quote + body + quote


def port_literals(path):
    # Bytes in and out: the suite's files have CRLF line ends to keep.
    source = path.read_bytes().decode("utf-8")
    tokens = list(tokenize.generate_tokens(io.StringIO(source, newline="").readline))
    lines = source.split("\n")
    lines = [line + "\n" for line in lines[:-1]] + [lines[-1]]
    edits = []
    for tok in tokens:
        if tok.type != tokenize.STRING:
            continue
        new = py2_bytes_literal(tok.string)
        if new is not None:
            edits.append((tok.start, tok.end, new))
    if not edits:
        return 0
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))
    out = source
    for (sr, sc), (er, ec), new in reversed(edits):
        start = offsets[sr - 1] + sc
        end = offsets[er - 1] + ec
        out = out[:start] + new + out[end:]
    path.write_bytes(out.encode("utf-8"))
    return len(edits)


def main():
    pkg = pathlib.Path(sys.argv[1])
    case_dir = pkg / "case"
    if not (case_dir / "case.py").is_file():
        sys.exit("py3port: %s has no case/case.py" % pkg)
    total = 0
    for path in sorted(case_dir.glob("case*.py")):
        n = port_literals(path)
        total += n
    print("py3port: %d byte-string literals converted in %s" % (total, case_dir))
    if total < 100:
        sys.exit("py3port: expected well over 100 byte-string literals, found %d" % total)


if __name__ == "__main__":
    main()
