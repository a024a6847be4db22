/**
 * What Grafana does to a ClickHouse panel's SQL before it reaches ClickHouse: template
 * variables are replaced in the browser, then the datasource expands its macros. The macro
 * forms are those of grafana/clickhouse-datasource (pkg/macros/macros.go). Anything that looks
 * like a variable or macro but is unknown here is an error, so a typo cannot slip through.
 */
export interface GrafanaContext {
  from: Date;
  to: Date;
  /** The panel's interval ($__interval_s), in seconds. */
  intervalS: number;
  variables: Record<string, string>;
}

const seconds = (d: Date) => Math.floor(d.getTime() / 1000);

export function grafanaInterpolate(sql: string, ctx: GrafanaContext): string {
  const withVars = sql.replace(/\$\{(\w+)\}|\$(?!__)([A-Za-z]\w*)/g, (m, braced: string | undefined, bare: string | undefined) => {
    const name = (braced ?? bare)!;
    const v = ctx.variables[name];
    if (v === undefined) throw new Error(`unknown template variable ${m}`);
    return v;
  });
  const dt = (d: Date) => `toDateTime(${seconds(d)})`;
  const dt64 = (d: Date) => `fromUnixTimestamp64Milli(${d.getTime()})`;
  const interval = Math.max(ctx.intervalS, 1);
  return withVars.replace(/\$__(\w+)(?:\(([^()]*)\))?/g, (m, name: string, arg: string | undefined) => {
    const col = arg?.trim();
    const needCol = () => {
      if (!col) throw new Error(`${m}: expected one argument`);
      return col;
    };
    switch (name) {
      case 'fromTime': return dt(ctx.from);
      case 'toTime': return dt(ctx.to);
      case 'fromTime_ms': return dt64(ctx.from);
      case 'toTime_ms': return dt64(ctx.to);
      case 'timeFilter': return `${needCol()} >= ${dt(ctx.from)} AND ${needCol()} <= ${dt(ctx.to)}`;
      case 'timeFilter_ms': return `${needCol()} >= ${dt64(ctx.from)} AND ${needCol()} <= ${dt64(ctx.to)}`;
      case 'timeInterval': return `toStartOfInterval(toDateTime(${needCol()}), INTERVAL ${interval} second)`;
      case 'interval_s': return String(interval);
      default: throw new Error(`unknown macro ${m}`);
    }
  });
}
