#!/bin/sh
# Copy orch's source from the tree in the current directory into DEST, for `make deb`
# to build from (so that whatever else lies in the tree stays out of the package).
# In the tree's own git work tree: the files git knows (tracked, and new ones it does not
# ignore). Anywhere else (a release tarball, `git archive`): the tree's files but what
# .gitignore names, .git, and any virtual environment (a directory with a pyvenv.cfg),
# so that both give the same package (tests/packaging/test_deb.py builds both).
set -eu
dest=${1:?usage: copy-source.sh DEST}
if [ "$(git rev-parse --show-toplevel 2>/dev/null || true)" = "$(pwd -P)" ]; then
    git ls-files -z --cached --others --exclude-standard | xargs -0r cp --parents -t "$dest"
    exit 0
fi
lists=$(mktemp -d)
trap 'rm -rf "$lists"' EXIT
# .gitignore's patterns as git reads them, for tar: the trailing / is dropped; a pattern
# with a / left in it is anchored at the top of the tree, the others match at any depth.
# (tar cannot re-include: a "!" pattern is left out, and a test would see its effect.)
sed -e '/^#/d' -e '/^!/d' -e '/^[[:space:]]*$/d' -e 's,/$,,' .gitignore 2>/dev/null \
    > "$lists/all" || true
grep -v / "$lists/all" > "$lists/anywhere" || true
grep / "$lists/all" | sed 's,^/*,./,' > "$lists/anchored" || true
# build/ and dist/ are make's own output (DEST is in build/): out even without .gitignore.
tar -cf - --anchored --exclude=./.git --exclude=./build --exclude=./dist \
    --exclude-from="$lists/anchored" --no-anchored --exclude-from="$lists/anywhere" \
    --exclude-tag-all=pyvenv.cfg . | tar -xf - -C "$dest"
