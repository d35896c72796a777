"""supervise-nlp: how procedural or change-focused is social-work recording?

Reads supervision records and visit notes, labels every segment (sentence, or line of a form)
``procedural``, ``change_focused`` or ``neutral`` by the project's codebook, and reports the
balance per team, worker, note type and month. Imports here are kept light so the command line
starts fast; the heavy pieces live in their stage modules (read, segment, features, classify,
aggregate, render).
"""

__version__ = "0.1.0"
