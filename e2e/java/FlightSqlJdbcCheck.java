// Named checks of the Apache Arrow Flight SQL JDBC driver (org.apache.arrow:flight-sql-jdbc-driver
// 18.3.0) against sqe-server's Flight SQL endpoint, with the TPC-H sample loaded.
//
//   java --add-opens=java.base/java.nio=ALL-UNNAMED -cp flight-sql-jdbc-driver.jar \
//       e2e/java/FlightSqlJdbcCheck.java <jdbc-url> <catalog> <tpch-schema> <scratch-schema> [check ...]
//   e.g. ... jdbc:arrow-flight-sql://127.0.0.1:50051?useEncryption=false iceberg tpch jdbc_scratch_1
//
// <scratch-schema> must not exist yet: the DDL/DML checks create it and a table in it.
// Prints "PASS <name>" or "FAIL <name>: <reason>" per check (only the named ones when names are
// given; the DML checks need "ddl_create_table" first) and a last line
// "summary: N checks passed, M failed"; exits 1 if any check failed, 2 on bad arguments or when
// no connection can be made. Java 17, no dependencies but the driver.
import java.math.BigDecimal;
import java.sql.Array;
import java.sql.Connection;
import java.sql.DatabaseMetaData;
import java.sql.Date;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.ResultSetMetaData;
import java.sql.SQLException;
import java.sql.Statement;
import java.sql.Timestamp;
import java.sql.Types;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

public class FlightSqlJdbcCheck {
    interface Check {
        void run() throws Exception;
    }

    interface RowCheck {
        void check(ResultSet rs) throws Exception;
    }

    static final class CheckFailed extends Exception {
        private static final long serialVersionUID = 1L;

        CheckFailed(String message) {
            super(message);
        }
    }

    static String url;
    static String catalog;
    static String schema;
    static String scratch;
    static Connection conn;

    static String tpch(String table) {
        return catalog + "." + schema + "." + table;
    }

    static String scratchTable() {
        return catalog + "." + scratch + ".jdbc_people";
    }

    static void check(boolean ok, String message) throws CheckFailed {
        if (!ok) {
            throw new CheckFailed(message);
        }
    }

    static void equal(Object expected, Object actual, String what) throws CheckFailed {
        if (!Objects.equals(expected, actual)) {
            throw new CheckFailed(what + ": expected <" + expected + "> but got <" + actual + ">"
                    + (actual == null ? "" : " (" + actual.getClass().getName() + ")"));
        }
    }

    static List<String> column(ResultSet rs, String col) throws SQLException {
        List<String> out = new ArrayList<>();
        try (rs) {
            while (rs.next()) {
                out.add(rs.getString(col));
            }
        }
        return out;
    }

    static ResultSet one(Statement st, String sql) throws Exception {
        ResultSet rs = st.executeQuery(sql);
        check(rs.next(), "no row from " + sql);
        return rs;
    }

    static ResultSet one(PreparedStatement ps) throws Exception {
        ResultSet rs = ps.executeQuery();
        check(rs.next(), "no row from the prepared statement");
        return rs;
    }

    static long count(String from) throws Exception {
        try (Statement st = conn.createStatement(); ResultSet rs = one(st, "SELECT count(*) FROM " + from)) {
            return rs.getLong(1);
        }
    }

    static void scalar(String expr, RowCheck f) throws Exception {
        try (Statement st = conn.createStatement(); ResultSet rs = one(st, "SELECT " + expr)) {
            f.check(rs);
            check(!rs.next(), "more than one row");
        }
    }

    static Map<String, Check> checks() {
        Map<String, Check> c = new LinkedHashMap<>();

        // ---- DatabaseMetaData
        c.put("metadata_catalogs", () -> {
            List<String> cats = column(conn.getMetaData().getCatalogs(), "TABLE_CAT");
            check(cats.contains(catalog), "getCatalogs " + cats + " lacks " + catalog);
        });
        c.put("metadata_schemas", () -> {
            DatabaseMetaData md = conn.getMetaData();
            List<String> all = column(md.getSchemas(), "TABLE_SCHEM");
            check(all.contains(schema), "getSchemas() " + all + " lacks " + schema);
            List<String> filtered = column(md.getSchemas(catalog, schema), "TABLE_SCHEM");
            equal(List.of(schema), filtered, "getSchemas(" + catalog + ", " + schema + ")");
        });
        c.put("metadata_tables", () -> {
            List<String> names = new ArrayList<>();
            try (ResultSet rs = conn.getMetaData().getTables(catalog, schema, "%", null)) {
                while (rs.next()) {
                    names.add(rs.getString("TABLE_NAME"));
                    equal(schema, rs.getString("TABLE_SCHEM"), "TABLE_SCHEM of " + rs.getString("TABLE_NAME"));
                    equal(catalog, rs.getString("TABLE_CAT"), "TABLE_CAT of " + rs.getString("TABLE_NAME"));
                }
            }
            check(names.contains("nation") && names.contains("region"), "getTables lists " + names);
        });
        c.put("metadata_columns", () -> {
            List<String> names = new ArrayList<>();
            Map<String, Integer> types = new LinkedHashMap<>();
            try (ResultSet rs = conn.getMetaData().getColumns(catalog, schema, "nation", "%")) {
                while (rs.next()) {
                    String name = rs.getString("COLUMN_NAME");
                    names.add(name);
                    types.put(name, rs.getInt("DATA_TYPE"));
                }
            }
            equal(List.of("n_nationkey", "n_name", "n_regionkey", "n_comment"), names, "columns of nation");
            for (String k : List.of("n_nationkey", "n_regionkey")) {
                int t = types.get(k);
                check(t == Types.BIGINT || t == Types.INTEGER, k + " has JDBC type " + t + ", not BIGINT/INTEGER");
            }
            for (String k : List.of("n_name", "n_comment")) {
                int t = types.get(k);
                check(t == Types.VARCHAR || t == Types.CHAR || t == Types.LONGVARCHAR || t == Types.NVARCHAR,
                        k + " has JDBC type " + t + ", not a character type");
            }
        });

        // ---- queries
        c.put("query_count", () -> equal(25L, count(tpch("nation")), "count(*) of nation"));
        c.put("query_rows_in_order", () -> {
            try (Statement st = conn.createStatement();
                    ResultSet rs = st.executeQuery("SELECT r_regionkey, r_name FROM " + tpch("region") + " ORDER BY r_regionkey")) {
                List<String> got = new ArrayList<>();
                while (rs.next()) {
                    got.add(rs.getLong(1) + ":" + rs.getString(2));
                }
                equal(List.of("0:AFRICA", "1:AMERICA", "2:ASIA", "3:EUROPE", "4:MIDDLE EAST"), got, "regions");
            }
        });
        c.put("query_many_rows", () -> {
            long n = 0;
            try (Statement st = conn.createStatement(); ResultSet rs = st.executeQuery("SELECT o_orderkey FROM " + tpch("orders"))) {
                while (rs.next()) {
                    n++;
                }
            }
            equal(count(tpch("orders")), n, "rows read vs count(*) of orders");
        });
        c.put("statement_execute_select", () -> {
            try (Statement st = conn.createStatement()) {
                check(st.execute("SELECT n_name FROM " + tpch("nation") + " WHERE n_nationkey = 1"), "execute(SELECT) returned false");
                try (ResultSet rs = st.getResultSet()) {
                    check(rs.next(), "no row");
                    equal("ARGENTINA", rs.getString(1), "n_name of 1");
                }
            }
        });
        c.put("prepared_select_bigint", () -> {
            try (PreparedStatement ps = conn.prepareStatement("SELECT n_name FROM " + tpch("nation") + " WHERE n_nationkey = ?")) {
                ps.setLong(1, 7);
                try (ResultSet rs = one(ps)) {
                    equal("GERMANY", rs.getString(1), "nation 7");
                    check(!rs.next(), "more than one row");
                }
                ps.setLong(1, 8);
                try (ResultSet rs = one(ps)) {
                    equal("INDIA", rs.getString(1), "nation 8 (re-executed)");
                }
            }
        });
        c.put("prepared_select_varchar", () -> {
            try (PreparedStatement ps = conn.prepareStatement("SELECT n_nationkey FROM " + tpch("nation") + " WHERE n_name = ?")) {
                ps.setString(1, "CANADA");
                try (ResultSet rs = one(ps)) {
                    equal(3L, rs.getLong(1), "key of CANADA");
                }
            }
        });
        c.put("prepared_select_several", () -> {
            try (PreparedStatement ps = conn.prepareStatement("SELECT n_name FROM " + tpch("nation")
                    + " WHERE n_regionkey = ? AND n_nationkey < ? ORDER BY n_name")) {
                ps.setLong(1, 1);
                ps.setDouble(2, 3.5);
                equal(List.of("ARGENTINA", "BRAZIL", "CANADA"), column(ps.executeQuery(), "n_name"), "nations");
            }
        });

        // ---- DDL and DML
        c.put("ddl_create_table", () -> {
            try (Statement st = conn.createStatement()) {
                st.executeUpdate("CREATE SCHEMA " + catalog + "." + scratch);
                int n = st.executeUpdate("CREATE TABLE " + scratchTable() + " (id BIGINT, name VARCHAR)");
                equal(0, n, "executeUpdate(CREATE TABLE)");
            }
            equal(0L, count(scratchTable()), "rows of the new table");
        });
        c.put("insert_execute_update_count", () -> {
            try (Statement st = conn.createStatement()) {
                int n = st.executeUpdate("INSERT INTO " + scratchTable() + " VALUES (1, 'one'), (2, 'two'), (3, 'three')");
                equal(3, n, "executeUpdate(INSERT 3 rows)");
            }
            equal(3L, count(scratchTable()), "rows after the INSERT");
        });
        c.put("insert_execute_returns_false", () -> {
            long before = count(scratchTable());
            try (Statement st = conn.createStatement()) {
                boolean isResultSet = st.execute("INSERT INTO " + scratchTable() + " VALUES (4, 'four')");
                equal(false, isResultSet, "execute(INSERT)");
                equal(1, st.getUpdateCount(), "getUpdateCount after execute(INSERT)");
            }
            equal(before + 1, count(scratchTable()), "rows after execute(INSERT)");
        });
        c.put("prepared_insert", () -> {
            long before = count(scratchTable());
            try (PreparedStatement ps = conn.prepareStatement("INSERT INTO " + scratchTable() + " VALUES (?, ?)")) {
                ps.setLong(1, 10);
                ps.setString(2, "ten");
                equal(1, ps.executeUpdate(), "executeUpdate of a prepared INSERT");
                ps.setLong(1, 11);
                ps.setString(2, "it's eleven");
                equal(1, ps.executeUpdate(), "executeUpdate of the prepared INSERT, re-bound");
            }
            equal(before + 2, count(scratchTable()), "rows after the prepared INSERTs");
            try (PreparedStatement ps = conn.prepareStatement("SELECT name FROM " + scratchTable() + " WHERE id = ?")) {
                ps.setLong(1, 11);
                try (ResultSet rs = one(ps)) {
                    equal("it's eleven", rs.getString(1), "the inserted name");
                }
            }
        });

        // ---- types
        c.put("type_bigint", () -> scalar("CAST(9007199254740993 AS BIGINT)", rs -> equal(9007199254740993L, rs.getLong(1), "getLong")));
        c.put("type_integer", () -> scalar("CAST(-42 AS INT)", rs -> equal(-42, rs.getInt(1), "getInt")));
        c.put("type_varchar", () -> scalar("'héllo, wörld'", rs -> equal("héllo, wörld", rs.getString(1), "getString")));
        c.put("type_decimal", () -> scalar("CAST(12345678.90 AS DECIMAL(10,2))", rs -> {
            BigDecimal got = rs.getBigDecimal(1);
            check(got != null && got.compareTo(new BigDecimal("12345678.90")) == 0, "getBigDecimal returned " + got);
        }));
        c.put("type_double", () -> scalar("CAST(2.25 AS DOUBLE)", rs -> equal(2.25, rs.getDouble(1), "getDouble")));
        c.put("type_boolean", () -> {
            try (Statement st = conn.createStatement(); ResultSet rs = one(st, "SELECT true, false")) {
                equal(true, rs.getBoolean(1), "true");
                equal(false, rs.getBoolean(2), "false");
            }
        });
        c.put("type_date", () -> scalar("DATE '2024-02-29'", rs -> equal(Date.valueOf("2024-02-29"), rs.getDate(1), "getDate")));
        c.put("type_timestamp", () -> scalar("TIMESTAMP '2024-02-29 12:34:56.789'",
                rs -> equal(Timestamp.valueOf("2024-02-29 12:34:56.789"), rs.getTimestamp(1), "getTimestamp")));
        c.put("type_binary", () -> scalar("X'CAFEBABE00'", rs -> {
            byte[] got = rs.getBytes(1);
            check(Arrays.equals(new byte[] {(byte) 0xCA, (byte) 0xFE, (byte) 0xBA, (byte) 0xBE, 0}, got),
                    "getBytes returned " + Arrays.toString(got));
        }));
        c.put("type_array", () -> scalar("make_array(1, 2, 3)", rs -> {
            Array a = rs.getArray(1);
            check(a != null, "getArray returned null");
            Object[] values = (Object[]) a.getArray();
            equal(3, values.length, "array length");
            for (int i = 0; i < 3; i++) {
                equal(i + 1L, ((Number) values[i]).longValue(), "element " + i);
            }
        }));
        c.put("type_null", () -> {
            try (Statement st = conn.createStatement(); ResultSet rs = one(st, "SELECT CAST(NULL AS BIGINT) AS a, CAST(NULL AS VARCHAR) AS b")) {
                rs.getLong(1);
                check(rs.wasNull(), "wasNull after a NULL bigint");
                equal(null, rs.getString(2), "getString of NULL");
            }
        });
        c.put("type_result_metadata", () -> {
            try (Statement st = conn.createStatement();
                    ResultSet rs = st.executeQuery("SELECT n_nationkey, n_name FROM " + tpch("nation") + " WHERE n_nationkey = 0")) {
                ResultSetMetaData md = rs.getMetaData();
                equal(2, md.getColumnCount(), "column count");
                equal("n_nationkey", md.getColumnLabel(1), "label 1");
                equal("n_name", md.getColumnLabel(2), "label 2");
                int t2 = md.getColumnType(2);
                check(t2 == Types.VARCHAR || t2 == Types.LONGVARCHAR, "n_name JDBC type " + t2);
            }
        });

        // ---- errors
        c.put("error_missing_table", () -> {
            try (Statement st = conn.createStatement()) {
                st.executeQuery("SELECT * FROM " + catalog + "." + schema + ".no_such_table_e2e").close();
                throw new CheckFailed("a query of a missing table succeeded");
            } catch (SQLException e) {
                check(fullMessage(e).toLowerCase().contains("no_such_table_e2e"),
                        "the error does not name the table: " + fullMessage(e));
            }
        });
        c.put("error_then_connection_still_works", () -> {
            try (Statement st = conn.createStatement()) {
                try {
                    st.executeQuery("SELECT no_such_column_e2e FROM " + tpch("nation")).close();
                    throw new CheckFailed("a query of a missing column succeeded");
                } catch (SQLException e) {
                    check(fullMessage(e).toLowerCase().contains("no_such_column_e2e"),
                            "the error does not name the column: " + fullMessage(e));
                }
            }
            equal(5L, count(tpch("region")), "count(*) of region after an error");
        });
        return c;
    }

    static String fullMessage(Throwable t) {
        StringBuilder sb = new StringBuilder(String.valueOf(t.getMessage()));
        for (Throwable c = t.getCause(); c != null && c != t; c = c.getCause()) {
            sb.append(" / ").append(c.getMessage());
            if (c.getCause() == c) {
                break;
            }
        }
        return sb.toString();
    }

    static String oneLine(Throwable t) {
        StringBuilder sb = new StringBuilder(t.toString());
        for (Throwable c = t.getCause(); c != null && c != t; c = c.getCause()) {
            sb.append(" / caused by ").append(c);
            if (c.getCause() == c) {
                break;
            }
        }
        return sb.toString().replace('\n', ' ');
    }

    public static void main(String[] args) throws Exception {
        if (args.length < 4) {
            System.err.println("usage: FlightSqlJdbcCheck <jdbc-url> <catalog> <tpch-schema> <scratch-schema> [check ...]");
            System.exit(2);
        }
        url = args[0];
        catalog = args[1];
        schema = args[2];
        scratch = args[3];
        List<String> only = Arrays.asList(args).subList(4, args.length);
        try {
            conn = DriverManager.getConnection(url);
        } catch (SQLException e) {
            System.out.println("FAIL connect: " + oneLine(e));
            System.exit(2);
        }
        Map<String, Check> all = checks();
        for (String name : only) {
            if (!all.containsKey(name)) {
                System.err.println("no check named " + name + "; checks: " + all.keySet());
                System.exit(2);
            }
        }
        int passed = 0;
        int failed = 0;
        for (Map.Entry<String, Check> e : all.entrySet()) {
            if (!only.isEmpty() && !only.contains(e.getKey())) {
                continue;
            }
            try {
                e.getValue().run();
                System.out.println("PASS " + e.getKey());
                passed++;
            } catch (CheckFailed f) {
                System.out.println("FAIL " + e.getKey() + ": " + f.getMessage());
                failed++;
            } catch (Throwable t) {
                System.out.println("FAIL " + e.getKey() + ": " + oneLine(t));
                failed++;
            }
            System.out.flush();
        }
        try {
            conn.close();
        } catch (SQLException ignored) {
            // closing is not a check
        }
        System.out.println("summary: " + passed + " checks passed, " + failed + " failed");
        // the driver's gRPC threads are not daemons: exit explicitly
        System.exit(failed == 0 ? 0 : 1);
    }
}
