#!/usr/bin/env python3
"""Hand fixes to autobahntestsuite after lib2to3 and py3port.py.

Each fix is an exact text replacement with the number of places it must
match; a fix that matches a different number of times stops the script, so a
changed suite is noticed instead of run half ported. Every fix says why.

Usage: fixes.py <site-packages dir holding autobahntestsuite and autobahn>
"""

import pathlib
import sys

# Python 2 payloads were byte strings; ASCII literals are text after
# lib2to3. The fuzzing protocol encodes them where they reach the wire
# (autobahn 0.10.9 on Python 3 takes bytes), and nowhere else.
SEND_BOUNDARY = '''   MAX_WIRE_LOG_DATA = 256

   # py3port: text payloads (ASCII literals, json commands) go out as UTF-8.
   def sendFrame(self, opcode, payload = b"", *args, **kwargs):
      return super().sendFrame(opcode, _py3_bytes(payload), *args, **kwargs)

   def sendMessage(self, payload, *args, **kwargs):
      return super().sendMessage(_py3_bytes(payload), *args, **kwargs)

   def sendMessageFrameData(self, payload, *args, **kwargs):
      return super().sendMessageFrameData(_py3_bytes(payload), *args, **kwargs)

   def sendCloseFrame(self, code = None, reasonUtf8 = None, *args, **kwargs):
      return super().sendCloseFrame(code, _py3_bytes(reasonUtf8), *args, **kwargs)

   def sendMessageFrame(self, payload, *args, **kwargs):
      return super().sendMessageFrame(_py3_bytes(payload), *args, **kwargs)

   def sendPing(self, payload = None):
      return super().sendPing(_py3_bytes(payload))

   def sendData(self, data, *args, **kwargs):
      return super().sendData(_py3_bytes(data), *args, **kwargs)
'''

PY3_BYTES = '''

def _py3_bytes(value):
   """py3port: a Python 2 str was bytes; ASCII text encodes to the same."""
   if isinstance(value, str):
      return value.encode("utf-8")
   return value


def binLogData('''

# The cases compare what was received with what was expected by pickling
# both, so b"abc" (received) and "abc" (an ASCII literal) would differ on
# Python 3 although both were the same str on Python 2. Both sides are
# normalised the same way before the comparison; nothing else changes.
COMPARE = '''   def compare(self, obj1, obj2):
      return pickle.dumps(_py3_normalise(obj1)) == pickle.dumps(_py3_normalise(obj2))'''

NORMALISE = '''import pickle


def _py3_normalise(obj):
   """py3port: Python 2 str (bytes) and ASCII literals compare as bytes."""
   if isinstance(obj, str):
      return obj.encode("utf-8")
   if isinstance(obj, (list, tuple)):
      return type(obj)(_py3_normalise(o) for o in obj)
   return obj
'''

FIXES = [
    ("autobahntestsuite/fuzzing.py", "\n\ndef binLogData(", PY3_BYTES, 1, "send boundary helper"),
    ("autobahntestsuite/fuzzing.py", "   MAX_WIRE_LOG_DATA = 256\n", SEND_BOUNDARY, 1, "send boundary"),
    ("autobahntestsuite/case/case.py", "import pickle\n", NORMALISE, 1, "compare helper"),
    (
        "autobahntestsuite/case/case.py",
        "   def compare(self, obj1, obj2):\n      return pickle.dumps(obj1) == pickle.dumps(obj2)",
        COMPARE,
        1,
        "compare received with expected as Python 2 did",
    ),
    # UTF-8 test sequences built from chr(i): Python 2 bytes, not code points.
    ("autobahntestsuite/case/case6_x_x.py", "s += chr(i)", "s += bytes([i])", 2, "chr() built bytes"),
    ("autobahntestsuite/case/case6_x_x.py", "s += chr(0x20)", "s += bytes([0x20])", 1, "chr() built bytes"),
    ("autobahntestsuite/case/case6_x_x.py", '   s = ""\n', '   s = b""\n', 1, "byte string accumulator"),
    ("autobahntestsuite/case/case6_x_x.py", "      s = ''\n", "      s = b''\n", 1, "byte string accumulator"),
    ("autobahntestsuite/case/case6_x_x.py", "''.join(k)", "b''.join(k)", 1, "joins byte strings"),
    # Case is an old-style class on Python 2, so (object, Case) was a valid
    # base list; on Python 3 Case derives from object and the MRO fails.
    ("autobahntestsuite/case/case6_x_x.py", "(object, Case, )", "(Case, )", 1, "new-style bases"),
    ("autobahntestsuite/case/case7_7_X.py", "(object, Case, )", "(Case, )", 1, "new-style bases"),
    ("autobahntestsuite/case/case7_9_X.py", "(object, Case, )", "(Case, )", 1, "new-style bases"),
    ("autobahntestsuite/case/case9_7_X.py", "(object, Case, )", "(Case, )", 1, "new-style bases"),
    ("autobahntestsuite/case/case12_x_x.py", "(object, Case, )", "(Case, )", 2, "new-style bases"),
    # zope.interface dropped the Python 2 class advice implements().
    ("autobahntestsuite/case/case9_9_1.py", "from zope.interface import implements\n", "from zope.interface import implementer\n", 1, "class decorator"),
    (
        "autobahntestsuite/case/case9_9_1.py",
        "class FrameProducer:\n\n   implements(interfaces.IPushProducer)\n",
        "@implementer(interfaces.IPushProducer)\nclass FrameProducer:\n",
        1,
        "class decorator",
    ),
    # The WAMP serializer mode (-m serializer, not used here) imports a test
    # module of autobahn that needs unittest2, which no longer installs on
    # Python 3.11; import it when that mode runs.
    (
        "autobahntestsuite/serializer.py",
        "from autobahn.wamp.test.test_serializer import generate_test_messages\n",
        "",
        1,
        "lazy WAMP-only import",
    ),
    (
        "autobahntestsuite/serializer.py",
        "def start(outfilename, debug = False):\n",
        "def start(outfilename, debug = False):\n   from autobahn.wamp.test.test_serializer import generate_test_messages\n",
        1,
        "lazy WAMP-only import",
    ),
    # Per-case HTML report: Python 2 wrote encoded str to a byte file; on
    # Python 3 the file is text, so the writes stay text.
    (
        "autobahntestsuite/fuzzing.py",
        "% (c[0], case[c[0]], c[1])).encode(\"utf-8\"))",
        "% (c[0], case[c[0]], c[1])))",
        1,
        "text report",
    ),
    (
        "autobahntestsuite/fuzzing.py",
        "(2+4+len(prefix))*\" \", ll.encode('utf8')))",
        "(2+4+len(prefix))*\" \", ll))",
        1,
        "text report",
    ),
    # Case records may hold bytes (close reasons, handshake dumps), which
    # Python 2's json wrote as str; write them as UTF-8 text (replacing
    # invalid bytes) in the per-case JSON report.
    (
        "autobahntestsuite/fuzzing.py",
        "json.dumps(case, sort_keys = True, indent = 3, separators = (',', ': '))",
        "json.dumps(case, sort_keys = True, indent = 3, separators = (',', ': '), default = lambda o: o.decode('utf-8', 'replace'))",
        1,
        "bytes in the report",
    ),
    # Twisted on Python 3 takes URL path segments as bytes (the report web
    # server of -m fuzzingserver; .ci/autobahn turns it off with --webport 0).
    ("autobahntestsuite/fuzzing.py", "webdir.putChild('cwd', curdir)", "webdir.putChild(b'cwd', curdir)", 1, "bytes path segment"),
    # Integer division (Python 2 `/` on ints), in the suite and in autobahn
    # 0.10.9 itself (a frame with an explicit payload_len, cases 7.1.6, 9.x).
    (
        "autobahntestsuite/case/case10_1_1.py",
        "len(self.payload) / self.p.autoFragmentSize",
        "len(self.payload) // self.p.autoFragmentSize",
        1,
        "frame count is an int",
    ),
    (
        "autobahn/websocket/protocol.py",
        "range(payload_len / len(payload))",
        "range(payload_len // len(payload))",
        1,
        "repeat count is an int",
    ),
    # Indexing bytes gives an int on Python 3; Python 2 gave one byte.
    ("autobahntestsuite/case/case6_4_2.py", "PAYLOAD[12])", "PAYLOAD[12:13])", 2, "one byte, not an int"),
    ("autobahntestsuite/case/case6_4_4.py", "PAYLOAD[12])", "PAYLOAD[12:13])", 2, "one byte, not an int"),
    # Wire log: hex and text renderings of bytes for the JSON reports.
    (
        "autobahntestsuite/fuzzing.py",
        "      dd = binascii.b2a_hex(data[:maxlen]) + ellipses\n   else:\n      dd = binascii.b2a_hex(data)\n",
        "      dd = binascii.b2a_hex(data[:maxlen]).decode() + ellipses\n   else:\n      dd = binascii.b2a_hex(data).decode()\n",
        1,
        "hex dump is text",
    ),
    (
        "autobahntestsuite/fuzzing.py",
        "         dd = data[:maxlen] + ellipses\n",
        "         dd = data[:maxlen] + ellipses.encode()\n",
        1,
        "payload bytes plus an ASCII ellipsis",
    ),
    (
        "autobahntestsuite/fuzzing.py",
        "def binLogData(data, maxlen = 64):\n",
        "def binLogData(data, maxlen = 64):\n   data = _py3_bytes(data)\n",
        1,
        "expected payloads may be ASCII text",
    ),
    (
        "autobahntestsuite/fuzzing.py",
        "def asciiLogData(data, maxlen = 64, replace = False):\n",
        "def asciiLogData(data, maxlen = 64, replace = False):\n   data = _py3_bytes(data)\n",
        1,
        "expected payloads may be ASCII text",
    ),
    ("autobahntestsuite/fuzzing.py", "         p = ''.join(payload)\n", "         p = b''.join(payload)\n", 1, "frame payload chunks are bytes"),
    (
        "autobahntestsuite/fuzzing.py",
        "binascii.b2a_hex(frameHeader.mask) if frameHeader.mask else None",
        "binascii.b2a_hex(frameHeader.mask).decode() if frameHeader.mask else None",
        2,
        "mask as hex text for JSON",
    ),
]


def main():
    root = pathlib.Path(sys.argv[1])
    for rel, old, new, count, why in FIXES:
        path = root / rel
        # Bytes in and out: the suite's files have CRLF line ends.
        text = path.read_bytes().decode("utf-8")
        crlf = "\r\n" in text
        if crlf:
            text = text.replace("\r\n", "\n")
        found = text.count(old)
        if found != count:
            sys.exit("fixes: %s: %r matches %d times, expected %d (%s)" % (rel, old[:60], found, count, why))
        text = text.replace(old, new)
        if crlf:
            text = text.replace("\n", "\r\n")
        path.write_bytes(text.encode("utf-8"))
    print("fixes: %d fixes applied" % len(FIXES))


if __name__ == "__main__":
    main()
