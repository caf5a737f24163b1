#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Turn broker/dashboard.html into a C header for broker/dashboard.c.

Usage: dashboard_embed.py INPUT.html OUTPUT.h [CHART.js]

With CHART.js (Debian's libjs-chart.js, /usr/share/javascript/chart.js/
chart.min.js) the page's placeholder script block, the one holding only
/* @CHARTJS@ */, becomes that library, so the page draws its charts with
nothing loaded from outside (issue 11).

The header holds the page as a byte array (no string-literal escaping, no
length limits), a strong ETag derived from its content, and the
Content-Security-Policy that allows exactly the page's inline <style> and
<script> blocks by their sha256 hashes, so the policy can never drift from
the page.  Only the Python standard library: meson already needs Python.
"""
import base64
import hashlib
import re
import sys


def csp_hashes(text, tag):
    blocks = re.findall(r"<%s>(.*?)</%s>" % (tag, tag), text, re.S)
    if not blocks:
        sys.exit("dashboard_embed.py: no <%s> block in the page" % tag)
    return " ".join(
        "'sha256-%s'" % base64.b64encode(
            hashlib.sha256(b.encode("utf-8")).digest()).decode("ascii")
        for b in blocks)


PLACEHOLDER = "<script>/* @CHARTJS@ */</script>"


def embed_chart(data, path):
    with open(path, "r", encoding="utf-8") as f:
        lib = f.read()
    if "</script" in lib.lower() or "<!--" in lib:
        sys.exit("dashboard_embed.py: %s cannot sit in a <script> block"
                 % path)
    page = data.decode("utf-8")
    if page.count(PLACEHOLDER) != 1:
        sys.exit("dashboard_embed.py: the page needs one %s" % PLACEHOLDER)
    return page.replace(PLACEHOLDER,
                        "<script>" + lib + "\n</script>").encode("utf-8")


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit("usage: dashboard_embed.py INPUT.html OUTPUT.h [CHART.js]")
    with open(sys.argv[1], "rb") as f:
        data = f.read()
    if len(sys.argv) == 4:
        data = embed_chart(data, sys.argv[3])
    # Comments may mention the tags; only real blocks are hashed.
    text = re.sub(r"<!--.*?-->", "", data.decode("utf-8"), flags=re.S)
    # Blocks opened with attributes would escape the hashing above.
    if re.search(r"<(script|style)\s[^>]*>", text):
        sys.exit("dashboard_embed.py: <script>/<style> must have no "
                 "attributes")
    csp = ("default-src 'none'; script-src %s; style-src %s; "
           "connect-src 'self'; img-src data:; base-uri 'none'; "
           "form-action 'none'; frame-ancestors 'none'"
           % (csp_hashes(text, "script"), csp_hashes(text, "style")))
    etag = '"%s"' % hashlib.sha256(data).hexdigest()[:32]
    lines = [
        "/* Generated from dashboard.html by dashboard_embed.py: "
        "do not edit. */",
        "#pragma once",
        "",
        "static const char dashboard_etag[] = %s;" % c_string(etag),
        "static const char dashboard_csp[] = %s;" % c_string(csp),
        "static const unsigned char dashboard_html[] = {",
    ]
    for i in range(0, len(data), 16):
        lines.append("\t" + " ".join(
            "0x%02x," % b for b in data[i:i + 16]))
    lines.append("};")
    with open(sys.argv[2], "w", encoding="ascii") as f:
        f.write("\n".join(lines) + "\n")


def c_string(s):
    return '"%s"' % s.replace("\\", "\\\\").replace('"', '\\"')


if __name__ == "__main__":
    main()
