//! Kubernetes resource quantities (`500m`, `2`, `4Gi`, `1.5e3`) as integers.

/// A quantity that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid quantity {0:?}")]
pub struct QuantityError(pub String);

/// The quantity in nano-units (10^-9), rounded up; big enough for any real amount.
pub fn parse_nanos(s: &str) -> Result<i128, QuantityError> {
    let err = || QuantityError(s.to_string());
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(t.len());
    let (num, suffix) = t.split_at(split);
    if num.is_empty() {
        return Err(err());
    }
    let (neg, num) = match num.as_bytes()[0] {
        b'-' => (true, &num[1..]),
        b'+' => (false, &num[1..]),
        _ => (false, num),
    };
    let (int_part, frac_part) = num.split_once('.').unwrap_or((num, ""));
    if (int_part.is_empty() && frac_part.is_empty())
        || !int_part.bytes().all(|b| b.is_ascii_digit())
        || !frac_part.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(err());
    }
    // Mantissa as an integer with `scale` decimal digits after the point.
    let digits = format!("{int_part}{frac_part}");
    let digits = digits.trim_start_matches('0');
    if digits.len() > 30 {
        return Err(err());
    }
    let mantissa: i128 = if digits.is_empty() {
        0
    } else {
        digits.parse().map_err(|_| err())?
    };
    let scale = frac_part.len() as i32;
    // value = mantissa * 10^(exp10 - scale) * 2^exp2, in nanos: * 10^9.
    let (exp10, exp2): (i32, u32) = match suffix {
        "" => (0, 0),
        "n" => (-9, 0),
        "u" => (-6, 0),
        "m" => (-3, 0),
        "k" => (3, 0),
        "M" => (6, 0),
        "G" => (9, 0),
        "T" => (12, 0),
        "P" => (15, 0),
        "E" => (18, 0),
        "Ki" => (0, 10),
        "Mi" => (0, 20),
        "Gi" => (0, 30),
        "Ti" => (0, 40),
        "Pi" => (0, 50),
        "Ei" => (0, 60),
        e if e.starts_with(['e', 'E']) => (e[1..].parse::<i32>().map_err(|_| err())?, 0),
        _ => return Err(err()),
    };
    let mut value = mantissa.checked_mul(1i128 << exp2).ok_or_else(err)?;
    let pow = exp10 - scale + 9;
    if pow >= 0 {
        value = value
            .checked_mul(10i128.checked_pow(pow as u32).ok_or_else(err)?)
            .ok_or_else(err)?;
    } else {
        let div = 10i128.checked_pow((-pow) as u32).ok_or_else(err)?;
        value = (value + div - 1) / div;
    }
    Ok(if neg { -value } else { value })
}

/// The quantity in millis of its unit (CPU millicores), rounded up; negatives are 0.
pub fn to_millis(s: &str) -> Result<u64, QuantityError> {
    let n = parse_nanos(s)?;
    Ok(u64::try_from((n.max(0) + 999_999) / 1_000_000).unwrap_or(u64::MAX))
}

/// The quantity in whole units (bytes, GPUs), rounded up; negatives are 0.
pub fn to_units(s: &str) -> Result<u64, QuantityError> {
    let n = parse_nanos(s)?;
    Ok(u64::try_from((n.max(0) + 999_999_999) / 1_000_000_000).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_and_memory_forms() {
        assert_eq!(to_millis("500m"), Ok(500));
        assert_eq!(to_millis("2"), Ok(2000));
        assert_eq!(to_millis("0.1"), Ok(100));
        assert_eq!(to_millis("1.5"), Ok(1500));
        assert_eq!(to_millis("100u"), Ok(1));
        assert_eq!(to_units("4Gi"), Ok(4 << 30));
        assert_eq!(to_units("1.5Gi"), Ok(3 << 29));
        assert_eq!(to_units("128974848"), Ok(128_974_848));
        assert_eq!(to_units("129e6"), Ok(129_000_000));
        assert_eq!(to_units("123M"), Ok(123_000_000));
        assert_eq!(to_units("1k"), Ok(1000));
        assert!(to_units("12Qi").is_err());
        assert!(to_units("abc").is_err());
        assert!(to_units("").is_err());
    }
}
