#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Turn broker/dashboard.html into a C header for broker/dashboard.c.

Usage: dashboard_embed.py INPUT.html OUTPUT.h

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


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: dashboard_embed.py INPUT.html OUTPUT.h")
    with open(sys.argv[1], "rb") as f:
        data = f.read()
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
