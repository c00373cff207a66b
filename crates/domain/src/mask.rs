//! Masking of sensitive personal information for display and logs (PIPL: show only what
//! the viewer needs). Every function works on Unicode characters, never on bytes, so
//! Chinese names are safe, and none of them panics on short or odd input: when there is
//! too little to keep, more is masked, never less.

const STAR: char = '*';

/// Keeps the first `keep_start` and last `keep_end` characters and replaces each
/// character in between with `*`. If the text is not longer than what would be kept,
/// everything but the first character is masked (and a single character is masked
/// entirely), so a short value never shows in full.
pub fn generic(s: &str, keep_start: usize, keep_end: usize) -> String {
    let chars: Vec<char> = s.chars().collect();
    let n = chars.len();
    let (keep_start, keep_end) = if n > keep_start + keep_end {
        (keep_start, keep_end)
    } else if n > 1 {
        (1, 0)
    } else {
        (0, 0)
    };
    chars
        .iter()
        .enumerate()
        .map(|(i, c)| {
            if i < keep_start || i >= n - keep_end {
                *c
            } else {
                STAR
            }
        })
        .collect()
}

/// Resident ID: first 3 and last 4 kept, `110***********002X`.
pub fn resident_id(s: &str) -> String {
    generic(s, 3, 4)
}

/// Mobile: first 3 and last 4 kept, `138****5678`.
pub fn mobile(s: &str) -> String {
    generic(s, 3, 4)
}

/// Bank card: first 4 and last 4 digits kept, `6222 **** **** 1234`. The middle is
/// always shown as two groups so the display does not reveal the card length.
pub fn bank_card(s: &str) -> String {
    let digits: Vec<char> = s
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect();
    if digits.len() < 12 {
        return generic(&digits.iter().collect::<String>(), 0, 0);
    }
    let first: String = digits[..4].iter().collect();
    let last: String = digits[digits.len() - 4..].iter().collect();
    format!("{first} **** **** {last}")
}

/// Two-character compound surnames (复姓) kept whole when masking a name.
const COMPOUND_SURNAMES: [&str; 39] = [
    "欧阳", "司马", "上官", "诸葛", "东方", "皇甫", "尉迟", "公孙", "慕容", "长孙", "宇文", "司徒",
    "夏侯", "轩辕", "令狐", "端木", "独孤", "南宫", "西门", "百里", "呼延", "澹台", "公冶", "太史",
    "申屠", "闻人", "濮阳", "淳于", "单于", "钟离", "万俟", "赫连", "东郭", "拓跋", "司空", "宗政",
    "左丘", "谷梁", "第五",
];

/// Personal name: the surname is kept, every other character masked: `张*`, `王**`,
/// `欧阳**` (a compound surname is kept when the name has more than two characters).
/// Spaces in Latin-script names are kept: `J*** *****`.
pub fn name(s: &str) -> String {
    let s = s.trim();
    let chars: Vec<char> = s.chars().collect();
    let keep = if chars.len() > 2 && COMPOUND_SURNAMES.iter().any(|c| s.starts_with(c)) {
        2
    } else {
        1
    };
    if chars.len() <= 1 {
        return chars.iter().map(|_| STAR).collect();
    }
    chars
        .iter()
        .enumerate()
        .map(|(i, c)| if i < keep || *c == ' ' { *c } else { STAR })
        .collect()
}

/// E-mail: first character of the local part kept, then `***`, domain kept:
/// `z***@example.com`. Input without `@` is masked with [`generic`].
pub fn email(s: &str) -> String {
    match s.rsplit_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => generic(s, 1, 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_identifiers() {
        assert_eq!(resident_id("11010519491231002X"), "110***********002X");
        assert_eq!(mobile("13812345678"), "138****5678");
        assert_eq!(bank_card("6222021001123456784"), "6222 **** **** 6784");
        assert_eq!(bank_card("6222 0210 0112 3456"), "6222 **** **** 3456");
        assert_eq!(email("zhangsan@example.com"), "z***@example.com");
    }

    #[test]
    fn masks_names() {
        assert_eq!(name("张三"), "张*");
        assert_eq!(name("王小明"), "王**");
        assert_eq!(name("欧阳娜娜"), "欧阳**");
        assert_eq!(name("欧阳"), "欧*");
        assert_eq!(name("张"), "*");
        assert_eq!(name(""), "");
        assert_eq!(name("John Smith"), "J*** *****");
    }

    #[test]
    fn short_input_never_shown_in_full() {
        assert_eq!(generic("12345", 3, 4), "1****");
        assert_eq!(generic("ab", 3, 4), "a*");
        assert_eq!(generic("a", 3, 4), "*");
        assert_eq!(generic("", 3, 4), "");
        assert_eq!(generic("中文字符测试内容", 2, 2), "中文****内容");
        assert_eq!(bank_card("1234"), "****");
        assert_eq!(email("nobody"), "n*****");
    }
}
