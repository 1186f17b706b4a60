"""Makes tfjs-node's binding safe to run eager ops from several threads at once; run before the addon is compiled.

binding/tfjs_backend.cc keeps the attribute names of eager ops in one std::set (ATTR_NAME_SET) and inserts each op's
names into it on every call. The set is a static of the addon, and Node loads an addon once per process, so every
worker thread shares it: two engine threads inserting at once (their first decodes, say) corrupt the tree, which
crashed the server with SIGSEGV or aborted it later in malloc. This puts a mutex around the insert; the set never
erases, so a name's pointer stays valid after the lock is released.

Usage: patch_binding.py <package dir>   (idempotent; fails when the source is not the one this was written for)
"""
import sys
from pathlib import Path

MARK = 'ATTR_NAME_MUTEX'
EDITS = [
    ('#include <set>\n', '#include <mutex>\n#include <set>\n'),
    ('static std::set<std::string> ATTR_NAME_SET;\n',
     'static std::set<std::string> ATTR_NAME_SET;\n'
     '// Worker threads share this library and so this set: one insert at a time.\n'
     f'static std::mutex {MARK};\n'),
    ('  const char *attr_name =\n'
     '      ATTR_NAME_SET.insert(attr_name_string.c_str()).first->c_str();\n',
     '  const char *attr_name;\n'
     '  {\n'
     f'    std::lock_guard<std::mutex> lock({MARK});\n'
     '    attr_name = ATTR_NAME_SET.insert(attr_name_string).first->c_str();\n'
     '  }\n'),
]


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    source = Path(sys.argv[1]) / 'binding' / 'tfjs_backend.cc'
    text = source.read_text()
    if MARK in text:
        print(f'{source}: attribute-name lock already in place')
        return 0
    for old, new in EDITS:
        if text.count(old) != 1:
            print(f'{source}: expected exactly one occurrence of {old.strip()!r}; this patch was written for '
                  'tfjs-node 4.22.0: check the pinned version in package.json', file=sys.stderr)
            return 1
        text = text.replace(old, new)
    source.write_text(text)
    print(f'{source}: attribute-name lock added')
    return 0


if __name__ == '__main__':
    sys.exit(main())
