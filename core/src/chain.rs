//! The `chain` field: a chain's remaining steps, each a MessagePack map of
//! the step's fields (as a `scheduled` member), in a MessagePack array.

use crate::envelope::{field, fields_to_msgpack, msgpack_to_fields};

/// A job's fields, name and value, in order.
pub type Fields = Vec<(Vec<u8>, Vec<u8>)>;

/// Most steps a chain may have after its first.
pub const MAX_CHAIN_STEPS: usize = 100;

/// Encodes a chain's remaining steps: a MessagePack array of bin, each the
/// MessagePack map of a step's fields ([`fields_to_msgpack`]).
pub fn encode_chain(steps: &[Fields]) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = rmp::encode::write_array_len(&mut out, steps.len() as u32);
    for step in steps {
        let _ = rmp::encode::write_bin(&mut out, &fields_to_msgpack(step));
    }
    out
}

/// The steps of a `chain` field, each step's fields in order.
pub fn decode_chain(bytes: &[u8]) -> Result<Vec<Fields>, String> {
    let mut rd = bytes;
    let n = rmp::decode::read_array_len(&mut rd).map_err(|e| e.to_string())? as usize;
    if n > MAX_CHAIN_STEPS {
        return Err(format!("more than {MAX_CHAIN_STEPS} steps"));
    }
    let mut steps = Vec::with_capacity(n);
    for _ in 0..n {
        let len = rmp::decode::read_bin_len(&mut rd).map_err(|e| e.to_string())? as usize;
        if len > rd.len() {
            return Err("a step runs past the end".into());
        }
        let (step, rest) = rd.split_at(len);
        rd = rest;
        steps.push(msgpack_to_fields(step).ok_or("a step is not a MessagePack map of fields")?);
    }
    if !rd.is_empty() {
        return Err("trailing bytes".into());
    }
    Ok(steps)
}

pub(crate) fn check_chain(bytes: &[u8]) -> Result<(), String> {
    for step in decode_chain(bytes)? {
        if !step
            .iter()
            .any(|(k, v)| k == field::TYPE.as_bytes() && !v.is_empty())
        {
            return Err("a step has no type".into());
        }
        if !step.iter().any(|(k, _)| k == field::PAYLOAD.as_bytes()) {
            return Err("a step has no payload".into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(t: &str) -> Fields {
        vec![
            (b"type".to_vec(), t.as_bytes().to_vec()),
            (b"payload".to_vec(), vec![0xc0]),
        ]
    }

    #[test]
    fn a_chain_round_trips_and_garbage_is_refused() {
        let steps = vec![step("a"), step("b")];
        let bytes = encode_chain(&steps);
        assert_eq!(decode_chain(&bytes).unwrap(), steps);
        assert!(check_chain(&bytes).is_ok());
        assert!(decode_chain(&bytes[..bytes.len() - 1]).is_err());
        assert!(
            decode_chain(b"\x91\xc4\xff").is_err(),
            "a length past the end"
        );
        let typeless = encode_chain(&[vec![(b"payload".to_vec(), vec![0xc0])]]);
        assert!(check_chain(&typeless).is_err());
        let long: Vec<Fields> = (0..=MAX_CHAIN_STEPS).map(|_| step("x")).collect();
        assert!(decode_chain(&encode_chain(&long)).is_err());
    }
}
