"""Log importers: production traffic to a routing suite (the seed's steps 1, 2 and 6).

``modelroute import-logs LOGFILE... -o DIR`` (:mod:`.cli`) runs :mod:`.pipeline`:

- :mod:`.reading` streams the files, :mod:`.detect` names each file's format and one
  module per format in :mod:`.readers` turns records into :class:`.calls.Call`;
- :mod:`.redact` replaces personal data and secrets with typed placeholders;
- :mod:`.complexity` rates each call low/medium/high; :mod:`.grouping` sorts calls into
  tasks by field or by prompt template (:mod:`.templates`); :mod:`.sampling` keeps a
  seeded sample per task and complexity;
- :mod:`.volumes` scales counts to calls per month; :mod:`.catalog` picks the models,
  prices, the baseline and the judge; :mod:`.casefile` and :mod:`.writer` write and
  verify the suite; :mod:`.summary` reports.
"""
