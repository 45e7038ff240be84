"""What every view shares: the per-app runtime, request guards, languages, the form's signed token."""
