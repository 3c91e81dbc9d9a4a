/** A raw-SQL target of grafana-clickhouse-datasource (the SDK has no ClickHouse builders). */
import type { Builder, Dataquery } from '@grafana/grafana-foundation-sdk/cog';
import type { DataSourceRef } from '@grafana/grafana-foundation-sdk/dashboard';

export const CH: DataSourceRef = { type: 'grafana-clickhouse-datasource', uid: 'streampulse-clickhouse' };

export interface ClickHouseQuery extends Dataquery {
  refId?: string;
  datasource?: DataSourceRef;
  pluginVersion: string;
  editorType: 'sql';
  queryType: 'timeseries' | 'table';
  format: 0 | 1;
  rawSql: string;
}

export class ClickHouseQueryBuilder implements Builder<Dataquery> {
  private readonly q: ClickHouseQuery;
  constructor(rawSql: string, type: 'timeseries' | 'table' = 'timeseries') {
    this.q = {
      refId: 'A',
      datasource: CH,
      pluginVersion: '4.11.0',
      editorType: 'sql',
      queryType: type,
      format: type === 'timeseries' ? 0 : 1,
      rawSql,
      _implementsDataqueryVariant() {},
    };
  }
  build(): ClickHouseQuery {
    return this.q;
  }
}
