//! RocksDB behind the state benchmarks' `Store`, set up the way Flink's RocksDB state
//! backend sets it up for a subtask's keyed state:
//!
//! - no write-ahead log (a checkpoint, not the WAL, makes state durable);
//! - the memory budget split as Flink splits managed memory: half for write buffers (two
//!   memtables of a quarter each), the rest for an LRU block cache that also holds index and
//!   filter blocks;
//! - a 10-bit bloom filter (Flink leaves it off by default; on, RocksDB reads fewer blocks);
//! - no compression, as gemini-state's run files;
//! - keys prefixed with the key group, big-endian, as both Flink and gemini-state do.
//!
//! RocksDB gets 1.25 × `budget`; gemini-state gets `budget` for tier 0 and reads its run
//! files through a memory map, from the page cache that RocksDB's reads go through too. Batches use `batched_multi_get_cf` and a `WriteBatch`,
//! RocksDB's own batch calls, so neither side pays a call per key the other does not.

use std::path::Path;

use rocksdb::{
    statistics::Ticker, BlockBasedOptions, Cache, ColumnFamilyDescriptor, DBCompressionType,
    Options, WriteBatch, WriteOptions, DB, DEFAULT_COLUMN_FAMILY_NAME,
};

use super::Store;

pub struct Rocks {
    db: DB,
    options: Options,
    write: WriteOptions,
    keys: Vec<Vec<u8>>,
}

impl Rocks {
    /// Stored keys (group, then key) in the reusable buffers.
    fn stored(&mut self, groups: &[u16], keys: &[&[u8]]) {
        self.keys.resize_with(keys.len(), Vec::new);
        for ((buf, &g), k) in self.keys.iter_mut().zip(groups).zip(keys) {
            buf.clear();
            buf.extend_from_slice(&g.to_be_bytes());
            buf.extend_from_slice(k);
        }
    }
}

impl Store for Rocks {
    const NAME: &'static str = "rocksdb_";

    fn open(budget: usize, dir: &Path) -> Self {
        let total = budget + budget / 4;
        let mut options = Options::default();
        options.create_if_missing(true);
        options.enable_statistics();
        options.set_compression_type(DBCompressionType::None);
        options.set_write_buffer_size(budget / 4);
        options.set_max_write_buffer_number(2);
        let mut table = BlockBasedOptions::default();
        table.set_block_cache(&Cache::new_lru_cache(total - budget / 2));
        table.set_cache_index_and_filter_blocks(true);
        table.set_bloom_filter(10.0, false);
        options.set_block_based_table_factory(&table);
        // The default column family named explicitly, so `cf_handle` finds it for the batched
        // reads, with the same options.
        let default = ColumnFamilyDescriptor::new(DEFAULT_COLUMN_FAMILY_NAME, options.clone());
        let db = DB::open_cf_descriptors(&options, dir.join("rocksdb"), vec![default])
            .expect("open RocksDB");
        let mut write = WriteOptions::default();
        write.disable_wal(true);
        Rocks {
            db,
            options,
            write,
            keys: Vec::new(),
        }
    }

    fn read_many(
        &mut self,
        groups: &[u16],
        keys: &[&[u8]],
        visit: &mut dyn FnMut(usize, Option<&[u8]>),
    ) {
        self.stored(groups, keys);
        let cf = self.db.cf_handle("default").expect("default column family");
        let found = self.db.batched_multi_get_cf(cf, &self.keys, false);
        for (i, v) in found.into_iter().enumerate() {
            visit(i, v.expect("RocksDB read").as_deref());
        }
    }

    fn put_many(&mut self, groups: &[u16], keys: &[&[u8]], values: &[&[u8]]) {
        self.stored(groups, keys);
        let mut batch = WriteBatch::default();
        for (k, v) in self.keys.iter().zip(values) {
            batch.put(k, v);
        }
        self.db
            .write_opt(batch, &self.write)
            .expect("RocksDB write");
    }

    fn after_in_memory(&self, bench: &str) {
        let sst = self
            .db
            .property_int_value("rocksdb.total-sst-files-size")
            .expect("property")
            .unwrap_or(0);
        eprintln!("{bench}/rocksdb: {} MB flushed to SST files", sst >> 20);
    }

    fn report_amplification(&mut self, bench: &str, live: u64) {
        self.db.flush().expect("RocksDB flush");
        let ticker = |t| self.options.get_ticker_count(t);
        let written = ticker(Ticker::BytesWritten);
        let flushed = ticker(Ticker::FlushWriteBytes);
        let compacted = ticker(Ticker::CompactWriteBytes);
        let on_disk = self
            .db
            .property_int_value("rocksdb.total-sst-files-size")
            .expect("property")
            .unwrap_or(0);
        eprintln!(
            "{bench}: write amplification {:.2} (flushed {} MB + compacted {} MB for {} MB \
             written), space amplification {:.2} ({} MB of SST files for {} MB live)",
            (flushed + compacted) as f64 / written as f64,
            flushed >> 20,
            compacted >> 20,
            written >> 20,
            on_disk as f64 / live as f64,
            on_disk >> 20,
            live >> 20,
        );
    }
}
