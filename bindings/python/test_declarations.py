"""The ctypes declarations of mpt/_lib.py against the real header: every
struct's size and every field's offset and size (compiled and run), every
enum and error code, and every exported function's prototype (parsed from
the preprocessed header). Fails as soon as include/mpt/mpt.h changes in a
way the bindings do not follow: a field added, moved or resized, a code
added, a function added, removed or changed."""

import ctypes
import os
import re
import shutil
import subprocess
import tempfile
import unittest

from mpt import _lib

SRCDIR = os.environ.get("MPT_SRCDIR") or os.path.join(os.path.dirname(__file__), "..", "..")
INCLUDE = os.path.join(SRCDIR, "include")
CC = os.environ.get("CC") or "cc"
# the header's types -> the ctypes type the bindings must use for them
SCALARS = {"int": ctypes.c_int, "size_t": ctypes.c_size_t, "ssize_t": ctypes.c_ssize_t,
           "uint16_t": ctypes.c_uint16, "uint32_t": ctypes.c_uint32,
           "uint64_t": ctypes.c_uint64}
FUNC_TYPEDEFS = {"mpt_accept_cb", "mpt_trace_cb"}


def have_cc():
    return shutil.which(CC.split()[0]) is not None and \
        os.path.exists(os.path.join(INCLUDE, "mpt", "mpt.h"))


@unittest.skipUnless(have_cc(), "needs a C compiler and include/mpt/mpt.h")
class TestDeclarations(unittest.TestCase):
    def compile_and_run(self, body):
        with tempfile.TemporaryDirectory() as d:
            src, exe = os.path.join(d, "decl.c"), os.path.join(d, "decl")
            with open(src, "w") as f:
                f.write("#include <stdio.h>\n#include <stddef.h>\n#include <mpt/mpt.h>\n")
                f.write("int main(void) {\n%s\nreturn 0; }\n" % body)
            subprocess.run(CC.split() + ["-std=c11", "-D_GNU_SOURCE", "-I", INCLUDE, src,
                                         "-o", exe], check=True, capture_output=True)
            return subprocess.run([exe], check=True, capture_output=True, text=True).stdout

    def test_struct_layouts(self):
        lines = []
        for name, cls in _lib.STRUCTS.items():
            lines.append('printf("%s sizeof %%zu\\n", sizeof(struct %s));' % (name, name))
            for fname, _ in cls._fields_:
                if fname.startswith("__"):
                    continue
                lines.append('printf("%s %s %%zu %%zu\\n", offsetof(struct %s, %s), '
                             'sizeof(((struct %s *)0)->%s));'
                             % (name, fname, name, fname, name, fname))
        out = self.compile_and_run("\n".join(lines))
        for line in out.splitlines():
            name, field, a, *b = line.split()
            cls = _lib.STRUCTS[name]
            if field == "sizeof":
                self.assertEqual(ctypes.sizeof(cls), int(a),
                                 "struct %s has a different size in mpt.h: a field was "
                                 "added or changed; update mpt/_lib.py" % name)
            else:
                desc = getattr(cls, field)
                self.assertEqual((desc.offset, desc.size), (int(a), int(b[0])),
                                 "struct %s.%s: offset/size differ from mpt.h" % (name, field))

    def test_struct_fields(self):
        # The names in order: a field added into tail padding changes no size.
        text = " ".join(self.preprocessed().split())
        for name, cls in _lib.STRUCTS.items():
            m = re.search(r"struct %s \{(.*?)\};" % name, text)
            self.assertIsNotNone(m, "struct %s not in mpt.h" % name)
            fields = []
            for decl in m.group(1).split(";"):
                decl = re.sub(r"\[[^\]]*\]", "", decl).strip()
                if not decl:
                    continue
                first, *rest = decl.split(",")
                fields.append(re.findall(r"\w+", first)[-1])
                fields += [r.strip().lstrip("*").strip() for r in rest]
            mine = [f for f, _ in cls._fields_]
            self.assertEqual(mine, fields, "struct %s: fields differ from mpt.h" % name)

    def test_enums_and_error_codes(self):
        lines = ['printf("%%s %%d\\n", "%s", (int)%s);' % (n, n) for n in _lib.ENUMS]
        lines += ['printf("%%s %%d\\n", "MPT_%s", (int)MPT_%s);' % (n, n) for n in _lib.ERRORS]
        lines.append('#define C_(n, v, m) +1\nprintf("count %d\\n", 0 MPT_ERRNO_MAP(C_));')
        out = self.compile_and_run("\n".join(lines))
        got = dict((l.split()[0], int(l.split()[1])) for l in out.splitlines())
        self.assertEqual(got.pop("count"), len(_lib.ERRORS),
                         "error.h has a different number of codes than mpt/_lib.py")
        for n, v in _lib.ENUMS.items():
            self.assertEqual(got[n], v, n)
        for n, v in _lib.ERRORS.items():
            self.assertEqual(got["MPT_" + n], v, n)

    def preprocessed(self):
        return subprocess.run(CC.split() + ["-E", "-P", "-D_GNU_SOURCE", "-I", INCLUDE, "-x", "c",
                                            os.path.join(INCLUDE, "mpt", "mpt.h")],
                              check=True, capture_output=True, text=True).stdout

    def prototypes(self):
        text = " ".join(self.preprocessed().split())
        protos = {}
        for m in re.finditer(r"([A-Za-z_][\w\s\*]*?)\b(mpt_\w+)\s*\(([^()]*(?:\([^()]*\)"
                             r"[^()]*)*)\)\s*;", text):
            ret, name, args = m.group(1), m.group(2), m.group(3)
            ret = ret.split(";")[-1].split("}")[-1].strip()
            if ret.startswith("typedef") or "(" in name:
                continue
            protos[name] = (ret, [a.strip() for a in args.split(",")] if args.strip() != "void"
                            else [])
        return protos

    def kind(self, ctype):
        """("ptr", base type) or ("scalar", type) of a declaration "TYPE name"."""
        t = " ".join(ctype.replace("*", " * ").split())
        if "(" in t:
            return ("ptr", None)  # a function pointer
        if "*" in t:
            base = " ".join(w for w in t.split("*")[0].split() if w != "const")
            return ("ptr", base)
        words = [w for w in t.split() if w != "const"][:-1]  # drop the parameter name
        base = " ".join(words)
        if base in FUNC_TYPEDEFS:
            return ("ptr", None)
        if base.startswith("enum "):
            base = "int"
        return ("scalar", base)

    def check(self, cty, ctype, what):
        k, base = self.kind(ctype)
        if k == "scalar":
            if base == "void":
                self.assertIsNone(cty, what)
            else:
                self.assertIs(cty, SCALARS[base], "%s: %s" % (what, ctype))
            return
        self.assertTrue(cty in (ctypes.c_void_p, ctypes.c_char_p) or
                        (isinstance(cty, type) and issubclass(cty, ctypes._Pointer)),
                        "%s: %s must be a pointer" % (what, ctype))
        if cty is ctypes.c_char_p:
            self.assertTrue(base and base.startswith("char"), "%s: %s" % (what, ctype))
        if isinstance(cty, type) and issubclass(cty, ctypes._Pointer) and \
                issubclass(cty._type_, ctypes.Structure):
            self.assertEqual(base, "struct " + cty._type_.__name__, what)

    def test_functions(self):
        protos = self.prototypes()
        self.assertIn("mpt_ctx_new", protos)
        declared = set(_lib.FUNCS) | _lib.UNWRAPPED
        self.assertEqual(set(protos) - declared, set(),
                         "mpt.h exports functions mpt/_lib.py neither declares nor lists "
                         "in UNWRAPPED")
        self.assertEqual(set(_lib.FUNCS) - set(protos), set(),
                         "mpt/_lib.py declares functions mpt.h does not have")
        for name, (res, args) in _lib.FUNCS.items():
            ret, params = protos[name]
            self.check(res, ret.replace("MPT_EXPORT", "") + " x", name + " return")
            self.assertEqual(len(args), len(params), "%s: %s" % (name, params))
            for i, (a, p) in enumerate(zip(args, params)):
                self.check(a, p, "%s arg %d" % (name, i + 1))

    def test_the_test_catches_drift(self):
        # A struct one field short and a prototype with the wrong width must fail.
        class short(ctypes.Structure):
            _fields_ = _lib.mpt_info._fields_[:-1]
        saved = dict(_lib.STRUCTS), dict(_lib.FUNCS)
        try:
            _lib.STRUCTS.clear()
            _lib.STRUCTS["mpt_info"] = short
            with self.assertRaises(AssertionError):
                self.test_struct_layouts()
            _lib.STRUCTS.clear()
            _lib.STRUCTS.update(saved[0])
            _lib.FUNCS["mpt_ctx_run"] = (ctypes.c_int, [ctypes.c_void_p, ctypes.c_uint64])
            with self.assertRaises(AssertionError):
                self.test_functions()
        finally:
            _lib.STRUCTS.clear()
            _lib.STRUCTS.update(saved[0])
            _lib.FUNCS.clear()
            _lib.FUNCS.update(saved[1])


if __name__ == "__main__":
    unittest.main()
