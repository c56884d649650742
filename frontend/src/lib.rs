//! pigeon's model language (placeholder while the frontend is written).
