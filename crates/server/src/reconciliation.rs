//! Funder reconciliation (issue #8 item 5).
