"""A PEP 517 build backend for the mpt package that needs only the standard
library: pip runs it under build isolation with nothing installed and no
network (pyproject.toml: requires = []). It writes the wheel (and an sdist)
itself: the package is pure Python, so a wheel is a zip of mpt/ plus the
dist-info files of the wheel format (PEP 427, core metadata 2.1)."""

import base64
import hashlib
import io
import os
import re
import tarfile
import zipfile

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PKG = "mpt"


def _project():
    with open(os.path.join(HERE, "pyproject.toml"), encoding="utf-8") as f:
        text = f.read()
    section = text.split("[project]", 1)[1]
    fields = dict(re.findall(r'^(\w[\w-]*)\s*=\s*"([^"]*)"', section, re.M))
    return fields["name"], fields["version"], fields.get("description", ""), \
        fields.get("requires-python", "")


def _files():
    out = []
    for name in sorted(os.listdir(os.path.join(HERE, PKG))):
        if name.endswith((".py", ".pyi")) or name == "py.typed":
            if name == "_install.py":
                continue  # written by `make install` only
            out.append(name)
    return out


def _metadata():
    name, version, summary, requires = _project()
    lines = ["Metadata-Version: 2.1", "Name: " + name, "Version: " + version,
             "Summary: " + summary]
    if requires:
        lines.append("Requires-Python: " + requires)
    return "\n".join(lines) + "\n"


def _record_hash(data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return "sha256=" + digest.decode()


def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    name, version = _project()[:2]
    di = "%s-%s.dist-info" % (name, version)
    os.makedirs(os.path.join(metadata_directory, di), exist_ok=True)
    with open(os.path.join(metadata_directory, di, "METADATA"), "w", encoding="utf-8") as f:
        f.write(_metadata())
    return di


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    name, version = _project()[:2]
    di = "%s-%s.dist-info" % (name, version)
    wheel_name = "%s-%s-py3-none-any.whl" % (name, version)
    entries = []
    for fname in _files():
        with open(os.path.join(HERE, PKG, fname), "rb") as f:
            entries.append(("%s/%s" % (PKG, fname), f.read()))
    entries.append((di + "/METADATA", _metadata().encode()))
    entries.append((di + "/WHEEL", b"Wheel-Version: 1.0\nGenerator: mpt_build\n"
                                   b"Root-Is-Purelib: true\nTag: py3-none-any\n"))
    entries.append((di + "/top_level.txt", (PKG + "\n").encode()))
    record = "".join("%s,%s,%d\n" % (p, _record_hash(d), len(d)) for p, d in entries)
    record += di + "/RECORD,,\n"
    entries.append((di + "/RECORD", record.encode()))
    path = os.path.join(wheel_directory, wheel_name)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for p, d in entries:
            info = zipfile.ZipInfo(p, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, d)
    return wheel_name


def build_sdist(sdist_directory, config_settings=None):
    name, version = _project()[:2]
    base = "%s-%s" % (name, version)
    path = os.path.join(sdist_directory, base + ".tar.gz")
    members = ["pyproject.toml", "_build/mpt_build.py"] + ["%s/%s" % (PKG, f) for f in _files()]
    with tarfile.open(path, "w:gz") as tar:
        for m in members:
            tar.add(os.path.join(HERE, m), arcname="%s/%s" % (base, m))
        pkg_info = _metadata().encode()
        ti = tarfile.TarInfo("%s/PKG-INFO" % base)
        ti.size = len(pkg_info)
        tar.addfile(ti, io.BytesIO(pkg_info))
    return base + ".tar.gz"
