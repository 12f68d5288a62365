//! `lincheck`: a linearizability checker (placeholder until the checker lands).
