//! The registration policy (filled in below).
