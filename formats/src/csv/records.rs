//! Splitting CSV text into records, fast where the text is plain.
//!
//! csv_core reads a byte at a time through a state machine: about 500 MB/s here, which was 40%
//! of reading Nexmark's bid file. Most records have no quote character at all; for those, a
//! SIMD search (memchr) finds the line end and then the delimiters, several bytes per cycle.
//! A record that holds a quote or a bare carriage return goes to csv_core from its first byte,
//! with the same settings the csv crate would use, so quoting, escaped quotes and line breaks
//! inside quotes behave exactly as before.

use std::io::Read;

use ::csv::ByteRecord;

/// Read granularity; a record longer than this grows the buffer.
const CHUNK: usize = 1 << 20;

pub struct CsvRecords<R> {
    input: R,
    buf: Vec<u8>,
    /// Unread text is `buf[pos..len]`.
    pos: usize,
    len: usize,
    eof: bool,
    delimiter: u8,
    quote: Option<u8>,
    comment: Option<u8>,
    /// For records that need real CSV parsing.
    quoted: csv_core::Reader,
    /// 1-based line at which the next record starts.
    line: u64,
    /// Bytes of the input before `buf[0]`.
    base: u64,
    /// The last byte consumed, to tell whether the text ended inside a line.
    last_byte: u8,
    /// csv_core's output: the unescaped fields of one record and their ends.
    out: Vec<u8>,
    ends: Vec<usize>,
}

impl<R: Read> CsvRecords<R> {
    pub fn new(input: R, delimiter: u8, quote: Option<u8>, comment: Option<u8>) -> Self {
        let mut b = csv_core::ReaderBuilder::new();
        b.delimiter(delimiter).comment(comment);
        match quote {
            Some(q) => b.quote(q),
            None => b.quoting(false),
        };
        CsvRecords {
            input,
            buf: vec![0; CHUNK],
            pos: 0,
            len: 0,
            eof: false,
            delimiter,
            quote,
            comment,
            quoted: b.build(),
            line: 1,
            base: 0,
            last_byte: b'\n',
            out: vec![0; 1024],
            ends: vec![0; 64],
        }
    }

    /// Like [`CsvRecords::new`] for an input that starts at byte `offset` of the text, on
    /// line `line`: where [`CsvRecords::position`] said a record ended.
    pub fn resume(
        input: R,
        delimiter: u8,
        quote: Option<u8>,
        comment: Option<u8>,
        offset: u64,
        line: u64,
    ) -> Self {
        let mut r = CsvRecords::new(input, delimiter, quote, comment);
        r.base = offset;
        r.line = line;
        r
    }

    /// Where the next record starts: its byte offset in the text and its line.
    pub fn position(&self) -> (u64, u64) {
        (self.base + self.pos as u64, self.line)
    }

    /// Reads the next record into `record`; returns the line it started on, `None` at the end.
    pub fn read(&mut self, record: &mut ByteRecord) -> std::io::Result<Option<u64>> {
        loop {
            let text = &self.buf[self.pos..self.len];
            if text.is_empty() && self.eof {
                return Ok(None);
            }
            // The last line of a file may lack its newline.
            let Some(line_len) = memchr::memchr(b'\n', text).or(self.eof.then_some(text.len()))
            else {
                self.refill()?;
                continue;
            };
            let line = &text[..line_len];
            let body = line.strip_suffix(b"\r").unwrap_or(line);
            let needs_parser = match self.quote {
                Some(q) => memchr::memchr2(q, b'\r', body).is_some(),
                None => memchr::memchr(b'\r', body).is_some(),
            };
            if needs_parser {
                return self.read_with_parser(record);
            }
            let start_line = self.line;
            let consumed = (line_len + 1).min(text.len());
            self.last_byte = text[consumed - 1];
            self.pos += consumed;
            // Lines count newlines, as on the parser's path; a last line may have none.
            self.line += u64::from(consumed > line_len);
            // Blank lines and comment lines are not records, as in csv_core.
            if body.is_empty() || self.comment.is_some_and(|c| body[0] == c) {
                continue;
            }
            record.clear();
            let mut field_start = 0;
            for at in memchr::memchr_iter(self.delimiter, body) {
                record.push_field(&body[field_start..at]);
                field_start = at + 1;
            }
            record.push_field(&body[field_start..]);
            return Ok(Some(start_line));
        }
    }

    /// The line after the last record read: with the line that record started on, how many
    /// physical lines it took (an unclosed quote can take the rest of the file).
    pub fn next_line(&self) -> u64 {
        let ended_inside_a_line = self.eof && self.pos == self.len && self.last_byte != b'\n';
        self.line + u64::from(ended_inside_a_line)
    }

    /// Reads one record with csv_core, starting at `pos` (a record boundary), refilling the
    /// buffer as often as a record spanning lines needs.
    fn read_with_parser(&mut self, record: &mut ByteRecord) -> std::io::Result<Option<u64>> {
        use csv_core::ReadRecordResult::*;
        let start_line = self.line;
        let (mut out_len, mut n_ends) = (0, 0);
        loop {
            let input = &self.buf[self.pos..self.len];
            let (result, read, written, ended) =
                self.quoted
                    .read_record(input, &mut self.out[out_len..], &mut self.ends[n_ends..]);
            self.line += memchr::memchr_iter(b'\n', &input[..read]).count() as u64;
            if read > 0 {
                self.last_byte = input[read - 1];
            }
            self.pos += read;
            out_len += written;
            n_ends += ended;
            match result {
                InputEmpty => {
                    self.refill()?;
                }
                OutputFull => self.out.resize(self.out.len() * 2, 0),
                OutputEndsFull => self.ends.resize(self.ends.len() * 2, 0),
                Record => break,
                // Only comments or blank lines were left.
                End => return Ok(None),
            }
        }
        record.clear();
        let mut from = 0;
        for &end in &self.ends[..n_ends] {
            record.push_field(&self.out[from..end]);
            from = end;
        }
        Ok(Some(start_line))
    }

    /// Moves the unread text to the front and reads more after it; `false` once the input
    /// has ended (the parser is then given an empty input, which tells it so).
    fn refill(&mut self) -> std::io::Result<bool> {
        if self.eof {
            return Ok(false);
        }
        self.buf.copy_within(self.pos..self.len, 0);
        self.base += self.pos as u64;
        self.len -= self.pos;
        self.pos = 0;
        if self.len == self.buf.len() {
            self.buf.resize(self.buf.len() * 2, 0);
        }
        let n = loop {
            match self.input.read(&mut self.buf[self.len..]) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                other => break other?,
            }
        };
        self.len += n;
        self.eof = n == 0;
        Ok(!self.eof)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reader_resumed_at_a_position_reads_the_records_after_it() {
        let text = "a,1\n\"b\nb\",2\n# c\nd,3\ne,4";
        let mut whole = CsvRecords::new(text.as_bytes(), b',', Some(b'"'), Some(b'#'));
        let mut record = ByteRecord::new();
        whole.read(&mut record).unwrap();
        whole.read(&mut record).unwrap();
        let (offset, line) = whole.position();
        let mut rest: Vec<(u64, String)> = Vec::new();
        while let Some(l) = whole.read(&mut record).unwrap() {
            rest.push((l, String::from_utf8_lossy(&record[0]).into_owned()));
        }
        let tail = &text.as_bytes()[offset as usize..];
        let mut resumed = CsvRecords::resume(tail, b',', Some(b'"'), Some(b'#'), offset, line);
        let mut again = Vec::new();
        while let Some(l) = resumed.read(&mut record).unwrap() {
            again.push((l, String::from_utf8_lossy(&record[0]).into_owned()));
        }
        assert_eq!(again, rest);
        assert_eq!(rest, vec![(5, "d".to_string()), (6, "e".to_string())]);
        assert_eq!(resumed.position().0, text.len() as u64);
    }

    /// Every record as its fields and starting line, read through tiny
    /// reads so that records straddle refills.
    fn records(text: &str, quote: Option<u8>, comment: Option<u8>) -> Vec<(u64, Vec<String>)> {
        records_read_by(3, text, quote, comment)
    }

    fn records_read_by(
        piece: usize,
        text: &str,
        quote: Option<u8>,
        comment: Option<u8>,
    ) -> Vec<(u64, Vec<String>)> {
        struct Trickle<'a>(&'a [u8], usize);
        impl Read for Trickle<'_> {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                let n = buf.len().min(self.0.len()).min(self.1);
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let mut r = CsvRecords::new(Trickle(text.as_bytes(), piece), b',', quote, comment);
        let mut rec = ByteRecord::new();
        let mut out = Vec::new();
        while let Some(line) = r.read(&mut rec).unwrap() {
            let fields = rec
                .iter()
                .map(|f| String::from_utf8(f.to_vec()).unwrap())
                .collect();
            out.push((line, fields));
        }
        out
    }

    /// The csv crate's reading of the same text, with the settings the source used before.
    fn csv_crate(text: &str, quote: Option<u8>, comment: Option<u8>) -> Vec<(u64, Vec<String>)> {
        let mut b = ::csv::ReaderBuilder::new();
        b.has_headers(false).flexible(true).comment(comment);
        match quote {
            Some(q) => b.quote(q),
            None => b.quoting(false),
        };
        let mut rdr = b.from_reader(text.as_bytes());
        let mut rec = ByteRecord::new();
        let mut out = Vec::new();
        while rdr.read_byte_record(&mut rec).unwrap() {
            let fields = rec
                .iter()
                .map(|f| String::from_utf8(f.to_vec()).unwrap())
                .collect();
            out.push((rec.position().unwrap().line(), fields));
        }
        out
    }

    #[test]
    fn agrees_with_the_csv_crate() {
        let texts = [
            "a,b,c\n1,2,3\n",
            "a,b,c\r\n1,,3\r\n\r\n\n4,5",
            ",\n,,\nx\n",
            "plain,\"quoted, with comma\",\"esc \"\"q\"\"\"\nnext,\"two\nlines\",z\nlast,1,2\n",
            "\"a\"\"\",b\n\"unterminated,x\n",
            "# note\nk,v\n#another\n1,2",
            "cr\rinside,x\n",
            "",
            "\n\n",
        ];
        for text in texts {
            for (quote, comment) in [(Some(b'"'), None), (None, None), (Some(b'"'), Some(b'#'))] {
                let (ours, theirs) = (
                    records(text, quote, comment),
                    csv_crate(text, quote, comment),
                );
                let fields =
                    |r: &[(u64, Vec<String>)]| r.iter().map(|(_, f)| f.clone()).collect::<Vec<_>>();
                let why = format!("{text:?} quote {quote:?} comment {comment:?}");
                assert_eq!(fields(&ours), fields(&theirs), "{why}");
                // The csv crate does not count comment lines and counts CRLF line ends oddly;
                // elsewhere the lines agree.
                if !text.contains('\r') && comment.is_none() {
                    assert_eq!(ours, theirs, "{why}");
                }
            }
        }
        // Lines as an editor numbers them, whatever the line ends.
        let lines: Vec<u64> = records("a,b\r\n1,2\r\n\r\n\n4,5", Some(b'"'), None)
            .iter()
            .map(|(line, _)| *line)
            .collect();
        assert_eq!(lines, [1, 2, 5]);
        let lines: Vec<u64> = records("# note\nk,v\n#another\n1,2", None, Some(b'#'))
            .iter()
            .map(|(line, _)| *line)
            .collect();
        assert_eq!(lines, [2, 4]);
    }

    #[test]
    fn an_unclosed_quote_takes_the_rest_of_the_text_and_says_how_many_lines() {
        for (text, records, lines_of_last) in [
            ("a,b\n\"open,x\nmore\nand more\n", 2, 3),
            ("a,b\n\"open,x\nmore\nno newline", 2, 3),
            ("a,b\nc,d", 2, 1),
            ("a,b\nc,d\n", 2, 1),
        ] {
            let mut r = CsvRecords::new(text.as_bytes(), b',', Some(b'"'), None);
            let mut rec = ByteRecord::new();
            let (mut n, mut start) = (0, 0);
            while let Some(line) = r.read(&mut rec).unwrap() {
                n += 1;
                start = line;
            }
            assert_eq!(n, records, "{text:?}");
            assert_eq!(r.next_line() - start, lines_of_last, "{text:?}");
        }
    }

    #[test]
    fn a_record_longer_than_the_buffer_grows_it() {
        let long = "x".repeat(3 * CHUNK);
        let text = format!("{long},1\nshort,2\n");
        // Pieces of 64 KiB: a line is searched again after each read.
        let got = records_read_by(1 << 16, &text, Some(b'"'), None);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].1[0].len(), 3 * CHUNK);
        assert_eq!(got[1], (2, vec!["short".to_string(), "2".to_string()]));
    }
}
