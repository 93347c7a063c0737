"""The landing-zone contract's facts that every room stands on (no Dagster, no SQL):
`../shared/contract/landing-zone.md` in code. The simulator writes by it, the warehouse reads by
it, the models and the assets date by it."""
