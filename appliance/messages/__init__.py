"""Messages from therapists to patients: drafted, approved by a person, then delivered to the
patient's portal inbox (see service.py for the states and who may move them)."""
