//! Software x87 extended precision (64-bit significand) for INCRBYFLOAT and HINCRBYFLOAT.
//!
//! Redis parses both operands with `strtold`, adds them in `long double` and prints the sum
//! with `%.17Lf`, trimming zeros. On x86-64 that precision leaves visible digits
//! (`5.6 + 1000` is `1005.59999999999999998`), so matching Redis means doing the same
//! arithmetic: exact decimal-to-binary rounding, one rounded addition, and exact
//! binary-to-decimal printing. This module never handles NaN or infinities (callers refuse
//! them first) and gives up, returning `None`, on exponents outside a sane range.

use std::cmp::Ordering;

/// Arbitrary-size unsigned integer, little-endian 32-bit limbs, just enough for this module.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Big(Vec<u32>);

impl Big {
    fn from_u64(v: u64) -> Big {
        let mut b = Big(vec![v as u32, (v >> 32) as u32]);
        b.trim();
        b
    }

    fn trim(&mut self) {
        while self.0.last() == Some(&0) {
            self.0.pop();
        }
    }

    fn is_zero(&self) -> bool {
        self.0.is_empty()
    }

    fn bits(&self) -> u64 {
        match self.0.last() {
            None => 0,
            Some(top) => (self.0.len() as u64 - 1) * 32 + u64::from(32 - top.leading_zeros()),
        }
    }

    fn bit(&self, i: u64) -> bool {
        let limb = (i / 32) as usize;
        limb < self.0.len() && (self.0[limb] >> (i % 32)) & 1 == 1
    }

    /// True when any bit below `i` is set.
    fn any_below(&self, i: u64) -> bool {
        let full = (i / 32) as usize;
        if self.0.iter().take(full).any(|&l| l != 0) {
            return true;
        }
        let rem = i % 32;
        rem > 0 && full < self.0.len() && self.0[full] & ((1u32 << rem) - 1) != 0
    }

    fn mul_small(&mut self, m: u32) {
        let mut carry = 0u64;
        for l in &mut self.0 {
            let v = u64::from(*l) * u64::from(m) + carry;
            *l = v as u32;
            carry = v >> 32;
        }
        if carry > 0 {
            self.0.push(carry as u32);
        }
    }

    fn add_small(&mut self, a: u32) {
        let mut carry = u64::from(a);
        for l in &mut self.0 {
            if carry == 0 {
                return;
            }
            let v = u64::from(*l) + carry;
            *l = v as u32;
            carry = v >> 32;
        }
        if carry > 0 {
            self.0.push(carry as u32);
        }
    }

    fn pow10(n: u32) -> Big {
        let mut b = Big::from_u64(1);
        for _ in 0..n {
            b.mul_small(10);
        }
        b
    }

    fn shl(&self, n: u64) -> Big {
        if self.is_zero() {
            return self.clone();
        }
        let limbs = (n / 32) as usize;
        let bits = (n % 32) as u32;
        let mut out = vec![0u32; limbs];
        let mut carry = 0u32;
        for &l in &self.0 {
            if bits == 0 {
                out.push(l);
            } else {
                out.push((l << bits) | carry);
                carry = l >> (32 - bits);
            }
        }
        if carry > 0 {
            out.push(carry);
        }
        let mut b = Big(out);
        b.trim();
        b
    }

    fn shr(&self, n: u64) -> Big {
        let limbs = (n / 32) as usize;
        if limbs >= self.0.len() {
            return Big(Vec::new());
        }
        let bits = (n % 32) as u32;
        let src = &self.0[limbs..];
        let mut out = Vec::with_capacity(src.len());
        for i in 0..src.len() {
            let lo = src[i] >> bits;
            let hi = if bits > 0 && i + 1 < src.len() {
                src[i + 1] << (32 - bits)
            } else {
                0
            };
            out.push(lo | hi);
        }
        let mut b = Big(out);
        b.trim();
        b
    }

    fn cmp(&self, o: &Big) -> Ordering {
        self.0
            .len()
            .cmp(&o.0.len())
            .then_with(|| self.0.iter().rev().cmp(o.0.iter().rev()))
    }

    fn add(&self, o: &Big) -> Big {
        let mut out = Vec::with_capacity(self.0.len().max(o.0.len()) + 1);
        let mut carry = 0u64;
        for i in 0..self.0.len().max(o.0.len()) {
            let v = u64::from(*self.0.get(i).unwrap_or(&0))
                + u64::from(*o.0.get(i).unwrap_or(&0))
                + carry;
            out.push(v as u32);
            carry = v >> 32;
        }
        if carry > 0 {
            out.push(carry as u32);
        }
        let mut b = Big(out);
        b.trim();
        b
    }

    /// `self - o`; requires `self >= o`.
    fn sub(&self, o: &Big) -> Big {
        let mut out = Vec::with_capacity(self.0.len());
        let mut borrow = 0i64;
        for i in 0..self.0.len() {
            let mut v = i64::from(self.0[i]) - i64::from(*o.0.get(i).unwrap_or(&0)) - borrow;
            borrow = 0;
            if v < 0 {
                v += 1 << 32;
                borrow = 1;
            }
            out.push(v as u32);
        }
        let mut b = Big(out);
        b.trim();
        b
    }

    /// Quotient and whether the remainder is non-zero (shift-and-subtract division).
    fn div_sticky(&self, d: &Big) -> (Big, bool) {
        let mut q = Big(Vec::new());
        let mut r = Big(Vec::new());
        for i in (0..self.bits()).rev() {
            r = r.shl(1);
            if self.bit(i) {
                r.add_small(1);
            }
            q = q.shl(1);
            if r.cmp(d) != Ordering::Less {
                r = r.sub(d);
                q.add_small(1);
            }
        }
        (q, !r.is_zero())
    }

    fn to_decimal(&self) -> String {
        if self.is_zero() {
            return "0".to_owned();
        }
        let mut limbs = self.0.clone();
        let mut chunks = Vec::new();
        while !limbs.is_empty() {
            let mut rem = 0u64;
            for l in limbs.iter_mut().rev() {
                let v = (rem << 32) | u64::from(*l);
                *l = (v / 1_000_000_000) as u32;
                rem = v % 1_000_000_000;
            }
            while limbs.last() == Some(&0) {
                limbs.pop();
            }
            chunks.push(rem as u32);
        }
        let mut s = chunks.last().map(|c| c.to_string()).unwrap_or_default();
        for c in chunks.iter().rev().skip(1) {
            s.push_str(&format!("{c:09}"));
        }
        s
    }
}

/// A finite extended-precision value: `(-1)^neg * mant * 2^exp`, `mant` below 2^64.
#[derive(Clone, Debug, PartialEq)]
pub struct Ext {
    neg: bool,
    mant: u64,
    exp: i64,
}

/// Largest decimal exponent handled; beyond it callers fall back.
const MAX_DEC_EXP: i64 = 400;

/// Rounds `n * 2^exp` to 64 significant bits, half to even, with `sticky` lower bits.
fn round64(neg: bool, n: &Big, exp: i64, sticky: bool) -> Ext {
    let bits = n.bits();
    if bits <= 64 {
        let mant =
            n.0.iter()
                .rev()
                .fold(0u64, |a, &l| (a << 32) | u64::from(l));
        return Ext { neg, mant, exp };
    }
    let drop = bits - 64;
    let kept = n.shr(drop);
    let mut mant = kept
        .0
        .iter()
        .rev()
        .fold(0u64, |a, &l| (a << 32) | u64::from(l));
    let half = n.bit(drop - 1);
    let rest = sticky || n.any_below(drop - 1);
    let mut exp = exp + drop as i64;
    if half && (rest || mant & 1 == 1) {
        match mant.checked_add(1) {
            Some(m) => mant = m,
            None => {
                mant = 1 << 63;
                exp += 1;
            }
        }
    }
    Ext { neg, mant, exp }
}

/// `strtold` for plain decimal text (`-12.5`, `3e-2`); `None` for anything else.
pub fn parse(s: &[u8]) -> Option<Ext> {
    let (neg, rest) = match s.first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let (num, exp_part) = match rest.iter().position(|&c| c == b'e' || c == b'E') {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };
    let mut digits = Big(Vec::new());
    let mut dec_exp: i64 = 0;
    let mut seen_dot = false;
    let mut any = false;
    for &c in num {
        match c {
            b'.' if !seen_dot => seen_dot = true,
            b'0'..=b'9' => {
                any = true;
                digits.mul_small(10);
                digits.add_small(u32::from(c - b'0'));
                if seen_dot {
                    dec_exp -= 1;
                }
            }
            _ => return None,
        }
        if digits.bits() > 4000 {
            return None;
        }
    }
    if !any {
        return None;
    }
    if let Some(e) = exp_part {
        let e = std::str::from_utf8(e).ok()?.parse::<i64>().ok()?;
        if e.abs() > MAX_DEC_EXP * 2 {
            return None;
        }
        dec_exp += e;
    }
    if dec_exp.abs() > MAX_DEC_EXP {
        return None;
    }
    if digits.is_zero() {
        return Some(Ext {
            neg,
            mant: 0,
            exp: 0,
        });
    }
    if dec_exp >= 0 {
        let mut n = digits;
        for _ in 0..dec_exp {
            n.mul_small(10);
        }
        return Some(round64(neg, &n, 0, false));
    }
    let p = Big::pow10(dec_exp.unsigned_abs() as u32);
    let shift = (66 + p.bits() as i64 - digits.bits() as i64).max(0) as u64;
    let (q, sticky) = digits.shl(shift).div_sticky(&p);
    Some(round64(neg, &q, -(shift as i64), sticky))
}

/// `a + b` rounded once to extended precision.
pub fn add(a: &Ext, b: &Ext) -> Ext {
    if a.mant == 0 {
        return b.clone();
    }
    if b.mant == 0 {
        return a.clone();
    }
    let e = a.exp.min(b.exp);
    let x = Big::from_u64(a.mant).shl((a.exp - e) as u64);
    let y = Big::from_u64(b.mant).shl((b.exp - e) as u64);
    if a.neg == b.neg {
        return round64(a.neg, &x.add(&y), e, false);
    }
    match x.cmp(&y) {
        Ordering::Equal => Ext {
            neg: false,
            mant: 0,
            exp: 0,
        },
        Ordering::Greater => round64(a.neg, &x.sub(&y), e, false),
        Ordering::Less => round64(b.neg, &y.sub(&x), e, false),
    }
}

/// `%.17Lf` with Redis's trimming of trailing zeros, the dot, and `-0`.
pub fn format(v: &Ext) -> String {
    let mut n = Big::from_u64(v.mant);
    for _ in 0..17 {
        n.mul_small(10);
    }
    let scaled = if v.exp >= 0 {
        n.shl(v.exp as u64)
    } else {
        let sh = v.exp.unsigned_abs();
        let q = n.shr(sh);
        let half = sh > 0 && n.bit(sh - 1);
        let rest = sh > 1 && n.any_below(sh - 1);
        let mut q = q;
        if half && (rest || q.bit(0)) {
            q.add_small(1);
        }
        q
    };
    let digits = scaled.to_decimal();
    let digits = format!("{digits:0>18}");
    let (int, frac) = digits.split_at(digits.len() - 17);
    let frac = frac.trim_end_matches('0');
    let mut s = String::new();
    if v.neg {
        s.push('-');
    }
    s.push_str(int);
    if !frac.is_empty() {
        s.push('.');
        s.push_str(frac);
    }
    if s == "-0" {
        s = "0".to_owned();
    }
    s
}

/// INCRBYFLOAT's arithmetic on two texts; `None` when either is not plain decimal.
pub fn add_texts(a: &[u8], b: &[u8]) -> Option<String> {
    Some(format(&add(&parse(a)?, &parse(b)?)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sum(a: &str, b: &str) -> String {
        add_texts(a.as_bytes(), b.as_bytes()).unwrap()
    }

    #[test]
    fn matches_redis_long_double_results() {
        // Values observed from redis-server 7.0 on x86-64.
        assert_eq!(sum("5.6", "1e3"), "1005.59999999999999998");
        assert_eq!(sum("3", "1.1"), "4.1");
        assert_eq!(sum("0.1", "0.2"), "0.3");
        assert_eq!(sum("10.5", "0.1"), "10.6");
        assert_eq!(sum("1.5", "-1.5"), "0");
        assert_eq!(sum("0", "-0.25"), "-0.25");
        assert_eq!(sum("5.0", "0"), "5");
        assert_eq!(sum("-1e-30", "0"), "0");
        assert_eq!(sum("100", "200"), "300");
    }

    #[test]
    fn exact_integers_survive() {
        assert_eq!(sum("9007199254740993", "0"), "9007199254740993");
        assert_eq!(sum("18446744073709551615", "0"), "18446744073709551615");
    }
}
