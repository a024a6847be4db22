// dns-packet's record-type table; @types/dns-packet only covers the package's main module.
declare module 'dns-packet/types.js' {
  /** Type number for a name the package prints ("A", "HTTPS", "UNKNOWN_65280", ...). */
  export function toType(name: string): number;
}
