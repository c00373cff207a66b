//! Collections (issue #8 item 4).
