# Runs the test_* functions of the modules named in MODULES (set by the
# caller) on MicroPython and prints one line per test:
#   PASS <module>::<name>
#   FAIL <module>::<name>: <exception>
# followed by the traceback on stdout, then "N passed, M failed".
import io
import sys

passed = 0
failed = 0
for modname in MODULES:  # type: ignore[name-defined]  # noqa: F821
    mod = __import__(modname, None, None, ["_"])
    for name in sorted(dir(mod)):
        if not name.startswith("test_"):
            continue
        fn = getattr(mod, name)
        try:
            fn()
        except Exception as e:
            failed += 1
            buf = io.StringIO()
            sys.print_exception(e, buf)
            print("FAIL %s::%s: %r" % (modname, name, e))
            print(buf.getvalue())
        else:
            passed += 1
            print("PASS %s::%s" % (modname, name))
print("%d passed, %d failed" % (passed, failed))
