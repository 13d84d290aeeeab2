//! Encoding and decoding one Parquet file: rows sorted by timestamp, zstd, page-level
//! statistics (so the page index is written), the sort order recorded in the metadata.

use std::sync::OnceLock;

use arrow::array::{AsArray, RecordBatch};
use arrow::compute::{
    concat_batches, lexsort_to_indices, sort_to_indices, take_record_batch, SortColumn, SortOptions,
};
use arrow::datatypes::{TimestampMillisecondType, UInt64Type};
use bytes::Bytes;
use parquet::arrow::arrow_reader::{ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
use parquet::arrow::arrow_writer::ArrowWriterOptions;
use parquet::arrow::{add_encoded_arrow_schema_to_metadata, ArrowWriter};
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::metadata::SortingColumn;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use crate::schema::{read_schema, schema, BOOL_COLUMNS, DICTIONARY_COLUMNS, POSITION_COLUMN};
use crate::InsightsError;

/// The writer's settings, with the dictionary-typed schema the files declare (the
/// columns are built as plain text; the Parquet data is the same either way, since those
/// columns are dictionary-encoded). Made once, not per file.
fn properties() -> WriterProperties {
    static PROPERTIES: OnceLock<WriterProperties> = OnceLock::new();
    PROPERTIES
        .get_or_init(|| {
            let mut props = build_properties();
            add_encoded_arrow_schema_to_metadata(&read_schema(), &mut props);
            props
        })
        .clone()
}

fn build_properties() -> WriterProperties {
    let mut b = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).expect("level 1")))
        .set_statistics_enabled(EnabledStatistics::Page);
    // Values unique to each row gain nothing from a dictionary (it is built, then
    // abandoned), and the event JSON's min/max prune nothing.
    for column in ["timestamp", "id", "position", "event"] {
        b = b.set_column_dictionary_enabled(ColumnPath::from(column), false);
    }
    b = b.set_column_statistics_enabled(ColumnPath::from("event"), EnabledStatistics::None);
    // Times and positions rise through a file: their deltas take a few bits each.
    for column in ["timestamp", "position"] {
        b = b.set_column_encoding(ColumnPath::from(column), Encoding::DELTA_BINARY_PACKED);
    }
    // A handful of distinct values: the dictionary's indices take a bit or two a row,
    // and zstd would save little there while costing a compressor per column chunk
    // written and a decompressor per chunk read (every query reads `service`).
    let booleans = BOOL_COLUMNS.iter().map(|(column, _)| column);
    for column in DICTIONARY_COLUMNS.iter().chain(booleans) {
        b = b.set_column_compression(ColumnPath::from(*column), Compression::UNCOMPRESSED);
    }
    b.set_sorting_columns(Some(vec![SortingColumn {
        column_idx: 0,
        descending: false,
        nulls_first: false,
    }]))
    .set_max_row_group_row_count(Some(128 * 1024))
    .set_data_page_row_count_limit(8 * 1024)
    // The event JSON is most of a file and of a query's decoding: a query decodes
    // only the pages holding rows it keeps, so small pages spare it most of the
    // column when matches are few (measured on 90 days of an organization: a search
    // that matched 37 events took 33 ms with 1 MiB pages, 16 ms with 64 KiB; the
    // files grew by a tenth).
    .set_column_data_page_size_limit(ColumnPath::from("event"), 64 * 1024)
    .build()
}

fn write(batch: &RecordBatch) -> Result<Bytes, InsightsError> {
    let options = ArrowWriterOptions::new()
        .with_properties(properties())
        .with_skip_arrow_metadata(true);
    let mut w = ArrowWriter::try_new_with_options(Vec::new(), schema(), options)
        .map_err(|e| InsightsError::Internal(format!("parquet: {e}")))?;
    w.write(batch)
        .map_err(|e| InsightsError::Internal(format!("parquet: {e}")))?;
    Ok(Bytes::from(w.into_inner().map_err(|e| {
        InsightsError::Internal(format!("parquet: {e}"))
    })?))
}

/// Pieces of one partition (in log order) as one file, sorted by timestamp, then
/// position. Events mostly arrive in time order, so the pieces are usually sorted as
/// they are and are only joined.
pub fn encode(pieces: &[RecordBatch]) -> Result<Bytes, InsightsError> {
    let internal = |e: arrow::error::ArrowError| InsightsError::Internal(e.to_string());
    let all = match pieces {
        [one] => one.clone(),
        _ => concat_batches(&schema(), pieces).map_err(internal)?,
    };
    if is_sorted(&all) {
        return write(&all);
    }
    let keys = [
        SortColumn {
            values: all.column(0).clone(),
            options: None,
        },
        SortColumn {
            values: all.column(POSITION_COLUMN).clone(),
            options: None,
        },
    ];
    let order = lexsort_to_indices(&keys, None).map_err(internal)?;
    write(&take_record_batch(&all, &order).map_err(internal)?)
}

/// Whether a batch's rows are in (timestamp, position) order.
fn is_sorted(batch: &RecordBatch) -> bool {
    let ts = batch
        .column(0)
        .as_primitive::<TimestampMillisecondType>()
        .values();
    let pos = batch
        .column(POSITION_COLUMN)
        .as_primitive::<UInt64Type>()
        .values();
    (1..ts.len()).all(|i| (ts[i - 1], pos[i - 1]) <= (ts[i], pos[i]))
}

/// Several files of one partition as one, sorted by timestamp.
pub fn merge(files: &[Bytes]) -> Result<Bytes, InsightsError> {
    let mut batches = Vec::new();
    for f in files {
        // Read as plain text (the types the rows are built with), not dictionaries.
        let options = ArrowReaderOptions::new().with_skip_arrow_metadata(true);
        let reader = ParquetRecordBatchReaderBuilder::try_new_with_options(f.clone(), options)
            .and_then(|b| b.build())
            .map_err(|e| InsightsError::Internal(format!("parquet: {e}")))?;
        for b in reader {
            batches.push(b.map_err(|e| InsightsError::Internal(e.to_string()))?);
        }
    }
    let all =
        concat_batches(&schema(), &batches).map_err(|e| InsightsError::Internal(e.to_string()))?;
    let order = sort_to_indices(all.column(0), Some(SortOptions::default()), None)
        .map_err(|e| InsightsError::Internal(e.to_string()))?;
    let sorted =
        take_record_batch(&all, &order).map_err(|e| InsightsError::Internal(e.to_string()))?;
    write(&sorted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::to_batch;
    use castellan_domain::envelope::{Actor, ActorKind, Envelope, StreamId};
    use castellan_domain::ObjectId;

    fn event(position: u64, second: i64) -> Envelope {
        Envelope {
            event_id: castellan_domain::ids::new_event_id(),
            org_id: ObjectId::generate(1),
            stream: StreamId::auth("ldap"),
            stream_version: position,
            position,
            event_type: "ldap_bind".into(),
            schema_version: 1,
            occurred_at: time::OffsetDateTime::from_unix_timestamp(1_788_134_400 + second).unwrap(),
            actor: Actor {
                kind: ActorKind::User,
                id: None,
                email: None,
            },
            client_ip: None,
            user_agent: None,
            correlation_id: None,
            commit_id: uuid::Uuid::now_v7(),
            payload: serde_json::json!({"success": true}),
        }
    }

    /// Pieces whose events arrived out of time order (a late event, equal times) come
    /// out of the file sorted by timestamp, then position.
    #[test]
    fn encoded_pieces_are_sorted_by_time_then_position() {
        let first = to_batch(&[event(1, 5), event(2, 9), event(3, 9)]).unwrap();
        let second = to_batch(&[event(4, 1), event(5, 9)]).unwrap();
        let bytes = encode(&[first, second]).unwrap();
        let batches: Vec<RecordBatch> = ParquetRecordBatchReaderBuilder::try_new(bytes)
            .unwrap()
            .build()
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let positions: Vec<u64> = batches
            .iter()
            .flat_map(|b| {
                let p = b.column(POSITION_COLUMN).as_primitive::<UInt64Type>();
                p.values().to_vec()
            })
            .collect();
        assert_eq!(positions, [4, 1, 2, 3, 5]);
        let in_order = to_batch(&[event(1, 1), event(2, 1), event(3, 2)]).unwrap();
        assert!(is_sorted(&in_order));
        assert!(!is_sorted(
            &concat_batches(
                &schema(),
                &[in_order.clone(), to_batch(&[event(4, 0)]).unwrap()]
            )
            .unwrap()
        ));
    }
}
