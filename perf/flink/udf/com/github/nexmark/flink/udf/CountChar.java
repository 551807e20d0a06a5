package com.github.nexmark.flink.udf;

import org.apache.flink.table.functions.ScalarFunction;

/**
 * Nexmark q14's count_char(s, c): how many times the first character of c occurs in s.
 * The Nexmark project ships it in its own jar, which is not on PyPI; this is the same function,
 * compiled by perf/flink/setup.sh, under the class name q14's CREATE FUNCTION names.
 */
public class CountChar extends ScalarFunction {
    public long eval(String s, String c) {
        if (s == null || c == null || c.isEmpty()) {
            return 0;
        }
        char wanted = c.charAt(0);
        long count = 0;
        for (int i = 0; i < s.length(); i++) {
            if (s.charAt(i) == wanted) {
                count++;
            }
        }
        return count;
    }
}
