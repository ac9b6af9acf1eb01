"""Project tooling that is not part of the installed packages (the course: course.py)."""
