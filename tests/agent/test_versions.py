"""Version order against the vectors the reference implementations test themselves with."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vulfix.agent.executors.versions import (
    VersionScheme,
    at_least,
    compare,
    compare_apk,
    compare_deb,
    compare_rpm,
    rpmvercmp,
)


def sign(value: int) -> int:
    return (value > 0) - (value < 0)


# dpkg, scripts/t/100_Dpkg_Version.t (the __DATA__ table: left, right, expected order),
# and the parse cases of lib/dpkg/t/t-version.c.
DPKG_VECTORS = """
1.0-1 2.0-2 -1
2.2~rc-4 2.2-1 -1
2.2-1 2.2~rc-4 1
1.0000-1 1.0-1 0
1 0:1 0
0 0:0-0 0
2:2.5 1:7.5 1
1:foo foo 1
0:foo foo 0
foo foo 0
foo- foo 0
foo- foo-0 0
foo fo 1
foo- foo+ -1
foo~1 foo -1
foo~foo+Bar foo~foo+bar -1
foo~~ foo~ -1
1~ 1 -1
12345+that-really-is-some-ver-0 12345+that-really-is-some-ver-10 -1
foo-0 foo-01 -1
foo.bar foobar 1
foo.bar foo1bar 1
foo.bar foo0bar 1
1foo-1 foo-1 -1
foo2.0 foo2 1
foo2.0.0 foo2.10.0 -1
foo2.0 foo2.0.0 -1
foo2.0 foo2.10 -1
foo2.1 foo2.10 -1
1.09 1.9 0
1.0.8+nmu1 1.0.8 1
3.11 3.10+nmu1 1
0.9j-20080306-4 0.9i-20070324-2 1
1.2.0~b7-1 1.2.0~b6-1 1
1.011-1 1.06-2 1
0.0.9+dfsg1-1 0.0.8+dfsg1-3 1
4.6.99+svn6582-1 4.6.99+svn6496-1 1
53 52 1
0.9.9~pre122-1 0.9.9~pre111-1 1
2:2.3.2-2+lenny2 2:2.3.2-2 1
1:3.8.1-1 3.8.GA-1 1
1.0.1+gpl-1 1.0.1-2 1
1a 1000a -1
0:0-0 0 0
0:0.0-0.0 0.0-0.0 0
0:0-0-0 0-0-0 0
0:0:0-0 0:0:0-0 0
5:1 4:9 1
"""

# rpm, tests/rpmvercmp.at (RPMVERCMP(left, right, expected)), tilde and caret cases included.
RPM_VECTORS = """
1.0 1.0 0
1.0 2.0 -1
2.0.1 2.0 1
2.0.1a 2.0.1 1
2.0.1 2.0.1a -1
5.5p1 5.5p2 -1
5.5p10 5.5p1 1
10xyz 10.1xyz -1
xyz10 xyz10.1 -1
xyz.4 8 -1
8 xyz.4 1
xyz.4 2 -1
5.5p2 5.6p1 -1
6.0.rc1 6.0 1
10b2 10a1 1
10a2 10b2 -1
1.0a 1.0aa -1
10.0001 10.1 0
10.0039 10.0001 1
4.999.9 5.0 -1
20101122 20101121 1
2_0 2.0 0
a+ a_ 0
+a _a 0
_+ +_ 0
+ _ 0
1.0~rc1 1.0 -1
1.0~rc1 1.0~rc2 -1
1.0~rc1~git123 1.0~rc1 -1
1.0^ 1.0 1
1.0^git1 1.0 1
1.0^git1 1.0^git2 -1
1.0^git1 1.01 -1
1.0^20160101 1.0.1 -1
1.0^20160102 1.0^20160101^git1 1
1.0~rc1^git1 1.0~rc1 1
1.0^git1 1.0^git1~pre 1
1.1.α 1.1.β 0
"""

# apk-tools, test/version.data (a selection: "left op right" lines).
APK_VECTORS = """
2.34 > 0.1.0_alpha
23_foo > 4_beta
1.0 < 1.0bc
0.1.0_alpha < 0.1.3_alpha
0.1.0_alpha2 > 0.1.0_alpha
1.1 > 1.1_alpha1
1.2 < 1.3_alpha
0.8_beta4 < 4.8-r1
3.10.18-r1 > 2.3.0b-r1
2.3.0b-r1 < 2.3.0b-r2
0.12.3 > 0.12
1.2.11 < 1.2.12.1
3.1_p16 < 3.1_p17
1.06-r6 < 006
1.2.2-r1 > 1.2.2
2.59 < 20050718-r1
2.01.01_alpha10 > 0.94
4.2.52_p2-r1 < 4.2.52_p4-r2
1.02.07 < 1.02.10-r1
20060720 > 3.0.20060720
2.5.1-r8 < 2.5.1a-r1
1.3.5-r10 > 1.3.5-r8
20040401 > 2.0.0_rc3-r1
3.0.0-r2 < 021109-r3
0.10.0 < 0.10.1_rc1
2.10.1 > 02.08.01b
1.2.07.8 < 1.2.12.04
0.20070118 < 0.20070207_rc1
4.5_p1-r1 > 4.5_p1
1.8.5 < 1.8.5_p2
0.9.28-r2 < 0.9.28.1
1.23 < 1.23-r1
2.12r-r4 < 2.12r-r5
7.0.17 < 7.0.174
1.3_pre1-r1 < 1.3.2
1.0_p10-r0 > 1.0_p9-r0
0.1.0_alpha_pre2 < 0.1.0_alpha
1.0.0_pre20191002222144-r0 < 1.0.0_pre20210530193627-r0
2.0.6 = 2.0.6
"""
APK_OPERATORS = {"<": -1, "=": 0, ">": 1}


def table(text: str) -> list[tuple[str, str, int]]:
    rows = []
    for line in text.strip().splitlines():
        left, middle, right = line.split()
        if middle in APK_OPERATORS:
            rows.append((left, right, APK_OPERATORS[middle]))
        else:
            rows.append((left, middle, int(right)))
    return rows


@pytest.mark.parametrize(("left", "right", "expected"), table(DPKG_VECTORS))
def test_deb_order_matches_dpkg(left: str, right: str, expected: int) -> None:
    assert sign(compare_deb(left, right)) == expected
    assert sign(compare_deb(right, left)) == -expected


@pytest.mark.parametrize(("left", "right", "expected"), table(RPM_VECTORS))
def test_rpm_segment_order_matches_rpmvercmp(left: str, right: str, expected: int) -> None:
    assert rpmvercmp(left, right) == expected
    assert rpmvercmp(right, left) == -expected


@pytest.mark.parametrize(("left", "right", "expected"), table(APK_VECTORS))
def test_apk_order_matches_apk_tools(left: str, right: str, expected: int) -> None:
    assert sign(compare_apk(left, right)) == expected
    assert sign(compare_apk(right, left)) == -expected


@pytest.mark.parametrize(
    ("left", "right", "expected"),
    [
        ("1:1.0-1", "2.0-1", 1),  # the epoch outranks the version
        ("0:1.0-1", "1.0-1", 0),  # a missing epoch is 0
        ("(none):1.0-1", "1.0-1", -1),  # not an epoch: rpm -q output is normalised before
        ("1.0-1.el8", "1.0", 1),  # rpmverCmp: a missing release sorts first
        ("1.0-2.el8", "1.0-10.el8", -1),
        ("1.1.1k-7.el8_6", "1.1.1k-9.el8_7", -1),
    ],
)
def test_rpm_evr_order_matches_rpmvercmp(left: str, right: str, expected: int) -> None:
    assert sign(compare_rpm(left, right)) == expected


@pytest.mark.parametrize(
    ("scheme", "installed", "fixed", "expected"),
    [
        ("deb", "1.1.1f-1ubuntu2.17", "1.1.1f-1ubuntu2.17", True),
        ("deb", "1.1.1f-1ubuntu2.16", "1.1.1f-1ubuntu2.17", False),
        ("deb", "2.2-1", "2.2~rc-4", True),
        ("rpm", "1.1.1k-9.el8_7", "1.1.1k-9.el8_6", True),
        ("rpm", "1.0.2k-25.el7_9", "1.0.2k-26.el7_9", False),
        ("apk", "3.1.4-r5", "3.1.4-r5", True),
        ("apk", "3.1.4_rc1-r0", "3.1.4-r0", False),
    ],
)
def test_at_least(scheme: VersionScheme, installed: str, fixed: str, expected: bool) -> None:
    assert at_least(scheme, installed, fixed) is expected


@pytest.mark.parametrize("scheme", ["deb", "rpm"])
def test_an_installed_epoch_does_not_outrank_a_fixed_version_that_names_none(
    scheme: VersionScheme,
) -> None:
    assert not at_least(scheme, "1:1.1.1k-7.el8", "1.1.1k-9.el8")
    assert at_least(scheme, "1:1.1.1k-9.el8", "1.1.1k-9.el8")
    assert not at_least(scheme, "1:2.0-1", "2:1.0-1")


VERSION_TEXT = st.text(alphabet="0123456789abzAZ.-+~^_:", max_size=12)


@given(VERSION_TEXT, VERSION_TEXT, st.sampled_from(["deb", "rpm", "apk"]))
def test_any_two_strings_compare_antisymmetrically(
    left: str, right: str, scheme: VersionScheme
) -> None:
    assert sign(compare(scheme, left, right)) == -sign(compare(scheme, right, left))
    assert compare(scheme, left, left) == 0
