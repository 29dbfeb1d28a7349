//! A byte-level decoder of `text/event-stream` (the WHATWG HTML "server-sent events" format): bytes are
//! buffered until a whole line has arrived, so a character split across network chunks is decoded whole,
//! and lines end at `\n`, `\r\n` or `\r`. Only what the change feed uses is kept: `id`, `data` (joined
//! with `\n` over several lines) and `event`; comments (`:` heartbeats) and unknown fields are skipped.

/// One event of the stream.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Event {
    /// The `id` field, if the event had one.
    pub id: Option<String>,
    /// The `event` field, if any.
    pub event: Option<String>,
    /// The `data` lines, joined with `\n`.
    pub data: String,
}

/// A line that is not UTF-8: the stream can no longer be trusted from here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotUtf8;

/// The decoder: feed it chunks as they arrive, take the events they complete.
#[derive(Debug, Default)]
pub struct Decoder {
    /// Bytes of the line not yet ended.
    line: Vec<u8>,
    /// The last byte seen was `\r` (a `\n` right after it ends nothing more).
    after_cr: bool,
    event: Event,
    has_data: bool,
}

/// The longest line kept: a stream that sends more without a line end is refused.
const MAX_LINE: usize = 1 << 20;

impl Decoder {
    /// A decoder at the start of a stream.
    pub fn new() -> Decoder {
        Decoder::default()
    }

    /// Decodes `chunk`, appending the events it completes to `out`.
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<Event>) -> Result<(), NotUtf8> {
        for &byte in chunk {
            match byte {
                b'\n' if self.after_cr => self.after_cr = false,
                b'\n' | b'\r' => {
                    self.after_cr = byte == b'\r';
                    let line = std::mem::take(&mut self.line);
                    self.line_ended(&line, out)?;
                }
                _ => {
                    self.after_cr = false;
                    if self.line.len() >= MAX_LINE {
                        return Err(NotUtf8);
                    }
                    self.line.push(byte);
                }
            }
        }
        Ok(())
    }

    fn line_ended(&mut self, line: &[u8], out: &mut Vec<Event>) -> Result<(), NotUtf8> {
        let line = std::str::from_utf8(line).map_err(|_| NotUtf8)?;
        if line.is_empty() {
            // A blank line dispatches the event (one without data is dropped, as browsers do).
            let event = std::mem::take(&mut self.event);
            if std::mem::take(&mut self.has_data) {
                out.push(event);
            }
            return Ok(());
        }
        if line.starts_with(':') {
            return Ok(());
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "data" => {
                if self.has_data {
                    self.event.data.push('\n');
                }
                self.event.data.push_str(value);
                self.has_data = true;
            }
            "id" if !value.contains('\0') => self.event.id = Some(value.to_owned()),
            "event" => self.event.event = Some(value.to_owned()),
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    fn decode(chunks: &[&[u8]]) -> Result<Vec<Event>, NotUtf8> {
        let mut decoder = Decoder::new();
        let mut out = Vec::new();
        for chunk in chunks {
            decoder.push(chunk, &mut out)?;
        }
        Ok(out)
    }

    #[test]
    fn events_whatever_the_chunking() {
        let stream =
            "id: 7\ndata: {\"kind\":\"é✓\"}\n\n: heartbeat\n\rid:8\r\ndata:a\r\ndata: b\r\n\r\nevent: x\n\n".as_bytes();
        let whole = decode(&[stream]).unwrap();
        assert_eq!(
            whole,
            vec![
                Event { id: Some("7".into()), event: None, data: "{\"kind\":\"é✓\"}".into() },
                Event { id: Some("8".into()), event: None, data: "a\nb".into() },
            ]
        );
        // Split at every byte: a multi-byte character cut across chunks is decoded whole.
        for cut in 0..stream.len() {
            let (a, b) = stream.split_at(cut);
            assert_eq!(decode(&[a, b]).unwrap(), whole, "cut at {cut}");
        }
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(decode(&bytes).unwrap(), whole);
    }

    #[test]
    fn a_line_that_is_not_utf8_stops_the_stream() {
        assert_eq!(decode(&[b"data: \xff\xfe\n\n"]), Err(NotUtf8));
        assert!(decode(&[b"data: ok\n\n", &[b'x'; MAX_LINE + 1]]).is_err());
    }
}
