"""Write the folders of the several-prior-courses example of docs/importing.md from the RayStation
pelvis export: OUT/new (its CT and RTSTRUCT: the new course's CT) and OUT/course2 (a second prior
course on the same CT: the PLAN dose halved, no RTPLAN). The first prior course is the export itself.

    python3 benchmarks/two_prior_courses.py $REIRRAD_REALDATA/raystation_alderson_pelvis_pydosert OUT
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from prior_courses_data import write_two_course_example  # noqa: E402  (the test-data writer)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("export", type=Path, help="the RayStation pelvis export (the first prior course)")
    p.add_argument("out", type=Path, help="a new folder for the example")
    a = p.parse_args()
    if a.out.exists():
        sys.exit(f"{a.out}: exists; give a new folder")
    new, second = write_two_course_example(a.export, a.out)
    print(f"new course's CT and RTSTRUCT: {new}\nsecond prior course: {second}")


if __name__ == "__main__":
    main()
