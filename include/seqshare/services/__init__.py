"""The service layer: one function per thing a person or a task asks for, each one transaction's work.

Services take a SQLAlchemy `Session` (the unit of work; the caller commits), plain values, the acting
user and `now`. They return small frozen views, never ORM objects, and raise `SeqshareError`s.
"""
