"""Version ordering as dpkg, rpm and apk-tools define it, to tell whether an upgrade fixed a hole.

Implemented here rather than taken from PyPI: python-debian covers dpkg only, and the libraries
that cover all three (univers and the like) bring large dependency trees into an agent that
otherwise needs none; each algorithm below is a few dozen lines transcribed from its reference:

- deb: dpkg `lib/dpkg/version.c` (`verrevcmp`, `dpkg_version_compare`), Debian Policy 5.6.12;
- rpm: rpm `rpmio/rpmvercmp.c` (`rpmvercmp`, with `~` and `^`) and `rpmverCmp` for E:V-R;
- apk: apk-tools `src/version.c` (the tokeniser of apk-tools 2.14 / 3).

`tests/agent/test_versions.py` checks them against those projects' own test vectors.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

VersionScheme = Literal["deb", "rpm", "apk"]

DIGITS = frozenset("0123456789")
LETTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
EPOCH_PREFIX = re.compile(r"\s*\d+:")


def compare(scheme: VersionScheme, left: str, right: str) -> int:
    """Negative, zero or positive as `left` sorts before, with or after `right`."""
    if scheme == "deb":
        return compare_deb(left, right)
    if scheme == "rpm":
        return compare_rpm(left, right)
    return compare_apk(left, right)


def at_least(scheme: VersionScheme, installed: str, fixed: str) -> bool:
    """Whether `installed` is `fixed` or newer.

    Advisories often leave the epoch out (`1.1.1k-9.el8` for `1:1.1.1k-9.el8`). When `fixed`
    names none, the installed epoch is ignored too, so an old `1:1.1.1k-7` is not taken for
    fixed because its epoch outranks an implied 0; the price is a rare false "still
    vulnerable" after an epoch reset, which a person can check, instead of a false "fixed".
    """
    if scheme != "apk" and not EPOCH_PREFIX.match(fixed):
        installed = EPOCH_PREFIX.sub("", installed, count=1)
    return compare(scheme, installed, fixed) >= 0


# --- dpkg --------------------------------------------------------------------------------


def compare_deb(left: str, right: str) -> int:
    left_epoch, left_upstream, left_revision = _split_deb(left)
    right_epoch, right_upstream, right_revision = _split_deb(right)
    if left_epoch != right_epoch:
        return -1 if left_epoch < right_epoch else 1
    return _verrevcmp(left_upstream, right_upstream) or _verrevcmp(left_revision, right_revision)


def _split_deb(version: str) -> tuple[int, str, str]:
    """[epoch:]upstream[-revision]; the revision follows the last hyphen."""
    text = version.strip()
    epoch_text, colon, rest = text.partition(":")
    epoch = 0
    if colon and epoch_text.isdigit():
        epoch, text = int(epoch_text), rest
    upstream, hyphen, revision = text.rpartition("-")
    return (epoch, upstream, revision) if hyphen else (epoch, text, "")


def _deb_order(char: str) -> int:
    # dpkg's order(): digits 0, letters themselves, `~` before everything (even the end),
    # any other character after all letters.
    if not char or char in DIGITS:
        return 0
    if char in LETTERS:
        return ord(char)
    if char == "~":
        return -1
    return ord(char) + 256


def _verrevcmp(left: str, right: str) -> int:
    i = j = 0
    while i < len(left) or j < len(right):
        first_diff = 0
        while (i < len(left) and left[i] not in DIGITS) or (
            j < len(right) and right[j] not in DIGITS
        ):
            left_order = _deb_order(left[i] if i < len(left) else "")
            right_order = _deb_order(right[j] if j < len(right) else "")
            if left_order != right_order:
                return left_order - right_order
            i, j = i + 1, j + 1
        while i < len(left) and left[i] == "0":
            i += 1
        while j < len(right) and right[j] == "0":
            j += 1
        while i < len(left) and j < len(right) and left[i] in DIGITS and right[j] in DIGITS:
            if not first_diff:
                first_diff = ord(left[i]) - ord(right[j])
            i, j = i + 1, j + 1
        if i < len(left) and left[i] in DIGITS:
            return 1
        if j < len(right) and right[j] in DIGITS:
            return -1
        if first_diff:
            return first_diff
    return 0


# --- rpm ---------------------------------------------------------------------------------


def compare_rpm(left: str, right: str) -> int:
    """E:V-R order as `rpmverCmp` has it: a missing epoch is 0, a missing release sorts first."""
    left_epoch, left_version, left_release = _split_rpm(left)
    right_epoch, right_version, right_release = _split_rpm(right)
    result = rpmvercmp(left_epoch, right_epoch) or rpmvercmp(left_version, right_version)
    if result or left_release is None or right_release is None:
        return result or (left_release is not None) - (right_release is not None)
    return rpmvercmp(left_release, right_release)


def _split_rpm(evr: str) -> tuple[str, str, str | None]:
    text = evr.strip()
    digits = len(text) - len(text.lstrip("0123456789"))
    epoch = "0"
    if text[digits : digits + 1] == ":":
        epoch, text = text[:digits] or "0", text[digits + 1 :]
    version, hyphen, release = text.rpartition("-")
    return (epoch, version, release) if hyphen else (epoch, text, None)


def _span(text: str, start: int, members: frozenset[str]) -> int:
    end = start
    while end < len(text) and text[end] in members:
        end += 1
    return end


def rpmvercmp(left: str, right: str) -> int:
    """One field (epoch, version or release), segment by segment as `rpmvercmp.c` does."""
    if left == right:
        return 0
    alnum = DIGITS | LETTERS
    i = j = 0
    while i < len(left) or j < len(right):
        while i < len(left) and left[i] not in alnum and left[i] not in "~^":
            i += 1
        while j < len(right) and right[j] not in alnum and right[j] not in "~^":
            j += 1
        one = left[i] if i < len(left) else ""
        two = right[j] if j < len(right) else ""
        # `~` sorts before everything, the end included.
        if one == "~" or two == "~":
            if one != "~":
                return 1
            if two != "~":
                return -1
            i, j = i + 1, j + 1
            continue
        # `^` sorts after the end, but before any other segment.
        if one == "^" or two == "^":
            if not one:
                return -1
            if not two:
                return 1
            if one != "^":
                return 1
            if two != "^":
                return -1
            i, j = i + 1, j + 1
            continue
        if not (one and two):
            break
        numeric = one in DIGITS
        members = DIGITS if numeric else LETTERS
        end_i, end_j = _span(left, i, members), _span(right, j, members)
        segment_one, segment_two = left[i:end_i], right[j:end_j]
        if not segment_two:
            # A number meets a word: the number is newer.
            return 1 if numeric else -1
        if numeric:
            segment_one, segment_two = segment_one.lstrip("0"), segment_two.lstrip("0")
            if len(segment_one) != len(segment_two):
                return 1 if len(segment_one) > len(segment_two) else -1
        if segment_one != segment_two:
            return 1 if segment_one > segment_two else -1
        i, j = end_i, end_j
    if i >= len(left) and j >= len(right):
        return 0
    return -1 if i >= len(left) else 1


# --- apk ---------------------------------------------------------------------------------

# Token kinds in the order apk-tools gives them: a version may only move forward through it.
INITIAL_DIGIT, DIGIT, LETTER, SUFFIX, SUFFIX_NO, COMMIT_HASH, REVISION_NO, END, INVALID = range(9)
# Pre-release suffixes sort before a version without suffix (NONE), the others after it.
NO_SUFFIX = 5
APK_SUFFIXES = {
    **{"alpha": 1, "beta": 2, "pre": 3, "rc": 4},
    **{"cvs": 6, "svn": 7, "git": 8, "hg": 9, "p": 10},
}
LOWER = frozenset("abcdefghijklmnopqrstuvwxyz")
HEX = frozenset("0123456789abcdefABCDEF")


@dataclass(slots=True)
class _ApkToken:
    kind: int
    value: str = ""
    number: int = 0
    suffix: int = 0


class _ApkTokens:
    """apk-tools' token_first/token_next over one version string."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.at = 0
        self.token = _ApkToken(INITIAL_DIGIT)
        self._digits()

    def _digits(self) -> None:
        end = _span(self.text, self.at, DIGITS)
        self.token.value = self.text[self.at : end]
        self.token.number = int(self.token.value or "0")
        self.at = end
        if not self.token.value:
            self.token.kind = INVALID

    def advance(self) -> None:
        token, text = self.token, self.text
        if self.at >= len(text):
            token.kind = END
            return
        char = text[self.at]
        if char in LOWER and token.kind <= DIGIT:
            token.kind, token.value = LETTER, char
            self.at += 1
        elif (char == "." and token.kind <= DIGIT) or char in DIGITS:
            if token.kind in (INITIAL_DIGIT, DIGIT):
                token.kind = DIGIT
            elif token.kind == SUFFIX and char != ".":
                token.kind = SUFFIX_NO
            else:
                token.kind = INVALID
                return
            if char == ".":
                self.at += 1
            self._digits()
        elif char == "_" and token.kind <= SUFFIX_NO:
            end = _span(text, self.at + 1, LOWER)
            token.value = text[self.at + 1 : end]
            token.suffix = APK_SUFFIXES.get(token.value, 0)
            token.kind = SUFFIX if token.suffix else INVALID
            self.at = end
        elif char == "~" and token.kind < COMMIT_HASH:
            end = _span(text, self.at + 1, HEX)
            token.value = text[self.at + 1 : end]
            token.kind = COMMIT_HASH if token.value else INVALID
            self.at = end
        elif text.startswith("-r", self.at) and token.kind < REVISION_NO:
            token.kind = REVISION_NO
            self.at += 2
            self._digits()
        else:
            token.kind = INVALID


def _apk_token_order(one: _ApkToken, two: _ApkToken) -> int:
    kind = one.kind
    # A component with a leading zero is ordered as a string, as Gentoo's rules say.
    leading_zero = one.value.startswith("0") or two.value.startswith("0")
    if kind in (INITIAL_DIGIT, SUFFIX_NO, REVISION_NO) or (kind == DIGIT and not leading_zero):
        return (one.number > two.number) - (one.number < two.number)
    if kind == SUFFIX:
        return (one.suffix > two.suffix) - (one.suffix < two.suffix)
    return (one.value > two.value) - (one.value < two.value)


def compare_apk(left: str, right: str) -> int:
    one, two = _ApkTokens(left.strip()), _ApkTokens(right.strip())
    while one.token.kind == two.token.kind and one.token.kind < END:
        order = _apk_token_order(one.token, two.token)
        if order:
            return order
        one.advance()
        two.advance()
    first, second = one.token, two.token
    if first.kind == second.kind:
        return 0
    # Equal so far: the longer version is newer, unless what follows is a pre-release suffix.
    if first.kind == SUFFIX and first.suffix < NO_SUFFIX:
        return -1
    if second.kind == SUFFIX and second.suffix < NO_SUFFIX:
        return 1
    return -1 if first.kind > second.kind else 1
