"""Homework from the reference: the exercise table, student versions, grading.

``python -m rlref homework list | make | grade`` (rlref/homework/commands.py); README's
"Instructors" section says how a course uses it.
"""
