"""Each platform dialect read from hand-written files, nasty cases included."""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd
import pytest

from contract.dialects import write_platform_file
from warehouse.parsing import read_platform_file
from warehouse.records import SchemaDriftError, UnreadableFile

DOUYIN_SESSIONS_HEADER = (
    "直播场次ID,直播间ID,直播间名称,主播编码,直播标题,开播时间,关播时间,观看人数,观看人次,"
    "最高在线人数,人均观看时长(秒),新增粉丝数,评论次数,点赞次数,成交金额(元),成交订单数"
)
TAOBAO_ORDERS_HEADER = (
    '"订单号","场次ID","商家编码","买家昵称ID","手机","省","市","地址","数量","单价","实付",'
    '"创建时间","付款时间","状态"'
)


def write(path, text: str, encoding: str) -> str:
    path.write_bytes(text.encode(encoding))
    return str(path)


def test_douyin_bom_local_times_and_empty_end_time(tmp_path):
    body = (
        DOUYIN_SESSIONS_HEADER + "\r\n"
        '7301,88,澜舍官方直播间,H001,"双11,""爆款""直降",2026-11-10 20:00:00,2026-11-11 00:30:00,'
        "1200,1500,300,185.5,12,40,900,25143.00,41\r\n"
        "7302,88,澜舍官方直播间,H002,晚场,2026-11-11 23:50:00,,10,12,5,60,0,1,2,0.00,0\r\n"
    )
    parsed = read_platform_file(write(tmp_path / "s.csv", body, "utf-8-sig"), "douyin", "sessions")
    rows = parsed.rows
    assert parsed.quarantine.empty and parsed.raw_rows == 2
    assert rows["session_id"].tolist() == ["7301", "7302"]  # the BOM is not part of the header
    assert rows.loc[0, "title"] == '双11,"爆款"直降'
    assert rows.loc[0, "start_time"] == pd.Timestamp("2026-11-10 12:00:00")  # 20:00 +08:00 in UTC
    assert pd.isna(rows.loc[1, "end_time"])  # still live
    assert rows.loc[0, "gmv"] == 2514300 and rows.loc[0, "avg_watch_s"] == 185.5
    assert rows["line"].tolist() == [2, 3]


def test_taobao_gb18030_quoted_thousands(tmp_path):
    body = (
        TAOBAO_ORDERS_HEADER + "\n"
        '"3001","400","LS-KT1000","tb_1","13800000000","广东省","深圳市","南山区科技路1号","1",'
        '"1,299.00","1,249.00","2026/11/11 20:01:02","2026/11/11 20:03:00","买家已付款"\n'
        '"3002","400","LS-KT1000","tb_2","13900000000","浙江省","杭州市","西湖区","2",'
        '"12,345,678.90","99.00","2026/11/11 21:00:00","","交易关闭"\n'
    )
    parsed = read_platform_file(write(tmp_path / "o.csv", body, "gb18030"), "taobao", "orders")
    rows = parsed.rows
    assert parsed.quarantine.empty
    assert rows["unit_price"].tolist() == [129900, 1234567890]
    assert rows["paid"].tolist() == [124900, 9900]
    assert rows["province"].tolist() == ["广东省", "浙江省"]
    assert rows["status"].tolist() == ["paid", "closed"]
    assert rows.loc[0, "created_at"] == pd.Timestamp("2026-11-11 12:01:02")
    assert pd.isna(rows.loc[1, "paid_at"])


JD_START_MS = int(dt.datetime(2026, 11, 11, 12, 0, tzinfo=dt.UTC).timestamp() * 1000)
JD_SESSION = {
    "live_id": "801", "room_id": "5", "room_name": "京东间", "anchor_code": "H003",
    "title": "t", "start_ms": JD_START_MS, "end_ms": None, "uv": 10, "pv": 12, "max_online": 4,
    "avg_stay_sec": 61.5, "fans_gained": 1, "comment_cnt": 2, "like_cnt": 3,
    "gmv_fen": 129900, "order_cnt": 1,
}  # fmt: skip


def test_jd_fen_epoch_ms_and_nulls(tmp_path):
    good = JD_SESSION
    as_number = {**good, "live_id": 802}  # ids must be JSON strings
    absent = {k: v for k, v in good.items() if k != "uv"} | {"live_id": "803"}
    lines = [
        json.dumps(good),
        json.dumps(as_number),
        json.dumps(absent),
        '{"live_id": "804", "room',
    ]
    path = tmp_path / "s.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    parsed = read_platform_file(path, "jd", "sessions")
    assert parsed.rows["session_id"].tolist() == ["801"]
    assert parsed.rows.loc[0, "start_time"] == pd.Timestamp("2026-11-11 12:00:00")
    assert pd.isna(parsed.rows.loc[0, "end_time"]) and parsed.rows.loc[0, "gmv"] == 129900
    q = parsed.quarantine.set_index("line")
    assert q.loc[2, "field"] == "session_id" and "unparseable" in q.loc[2, "reason"]
    assert q.loc[3, "field"] == "viewers" and "'uv' absent" in q.loc[3, "reason"]
    assert "malformed JSON" in q.loc[4, "reason"]
    assert parsed.raw_rows == 4


def test_jd_records_end_at_newline_only_and_ignore_byte_order_marks(tmp_path):
    record = JD_SESSION
    separators = {**record, "live_id": "802", "title": "大促\u2028第二行\u2029\x85结束"}
    body = (
        "\ufeff" + json.dumps(record, ensure_ascii=False) + "\r\n"  # a BOM and a CRLF
        + "\ufeff" + json.dumps(separators, ensure_ascii=False) + "\n"  # a BOM mid-file
    )  # fmt: skip
    path = tmp_path / "s.jsonl"
    path.write_text(body, encoding="utf-8")
    parsed = read_platform_file(path, "jd", "sessions")
    assert parsed.quarantine.empty and parsed.raw_rows == 2
    assert parsed.rows["session_id"].tolist() == ["801", "802"]
    assert parsed.rows["title"].tolist()[1] == "大促\u2028第二行\u2029\x85结束"


def test_bad_rows_are_quarantined_with_line_field_and_reason(tmp_path):
    ok = "7301,88,间,H001,标题,2026-11-10 20:00:00,2026-11-10 22:00:00,1,1,1,1,1,1,1,10.00,1"
    body = "\n".join(
        [
            DOUYIN_SESSIONS_HEADER,
            ok,
            ok.replace("7301,", "7302,") + ",extra",  # wrong field count
            ok.replace("7301,", "7303,").replace("2026-11-10 20:00:00", "2026-13-45 25:61"),
            ok.replace("7301,", "7304,").replace("10.00", "1O.00"),  # letter O
            ok.replace("7301,", "7305,").replace(",10.00,", ",-10.00,"),
            ok.replace("7301,", "7306,").replace("10.00", '"1,000.00"'),  # douyin: no separators
        ]
    )
    parsed = read_platform_file(write(tmp_path / "s.csv", body, "utf-8-sig"), "douyin", "sessions")
    q = parsed.quarantine.set_index("line")
    assert parsed.rows["session_id"].tolist() == ["7301"]
    assert "wrong field count" in q.loc[3, "reason"]
    assert q.loc[4, "field"] == "start_time" and "unparseable" in q.loc[4, "reason"]
    assert q.loc[5, "field"] == "gmv" and "1O.00" in q.loc[5, "reason"]
    assert q.loc[6, "field"] == "gmv" and "negative" in q.loc[6, "reason"]
    assert q.loc[7, "field"] == "gmv"
    assert parsed.raw_rows == 6 == len(parsed.rows) + len(parsed.quarantine)


def test_quarantine_masks_personal_data(tmp_path):
    body = (
        TAOBAO_ORDERS_HEADER + "\n"
        '"3001","400","LS-KT1000","tb_1","13800000000","广东省","深圳市","南山区科技路1号","-1",'
        '"1,299.00","1,249.00","2026/11/11 20:01:02","2026/11/11 20:03:00","买家已付款"\n'
    )
    parsed = read_platform_file(write(tmp_path / "o.csv", body, "gb18030"), "taobao", "orders")
    raw = json.loads(parsed.quarantine.loc[0, "raw"])
    assert parsed.quarantine.loc[0, "field"] == "quantity"
    assert raw["phone"] == "***" and raw["address"] == "***" and raw["order_id"] == "3001"


def test_missing_column_names_file_and_column(tmp_path):
    header = DOUYIN_SESSIONS_HEADER.replace("成交金额(元)", "成交金额")
    path = write(tmp_path / "sessions.csv", header + "\n", "utf-8-sig")
    with pytest.raises(SchemaDriftError) as err:
        read_platform_file(path, "douyin", "sessions")
    assert "sessions.csv" in str(err.value) and "'成交金额(元)'" in str(err.value)


def test_every_missing_column_is_named_at_once(tmp_path):
    header = DOUYIN_SESSIONS_HEADER.replace("成交金额(元)", "成交金额").replace("主播编码", "主播")
    path = write(tmp_path / "sessions.csv", header + "\n", "utf-8-sig")
    with pytest.raises(SchemaDriftError) as err:
        read_platform_file(path, "douyin", "sessions")
    assert err.value.missing == ["主播编码", "成交金额(元)"]
    assert "'主播编码', '成交金额(元)'" in str(err.value)


@pytest.mark.parametrize(
    ("platform", "table", "header", "encoding", "said"),
    [
        ("taobao", "orders", TAOBAO_ORDERS_HEADER, "utf-8", "not GB18030 text: the file is UTF-8"),
        (
            "douyin",
            "sessions",
            DOUYIN_SESSIONS_HEADER,
            "gb18030",
            "not UTF-8 text: the file is GB18030",
        ),
    ],
)
def test_a_file_in_another_encoding_is_said_so(tmp_path, platform, table, header, encoding, said):
    path = write(tmp_path / f"{table}.csv", header + "\n", encoding)
    with pytest.raises(UnreadableFile, match=said):
        read_platform_file(path, platform, table)


def test_an_empty_csv_is_said_to_be_empty(tmp_path):
    path = write(tmp_path / "sessions.csv", "", "utf-8")
    with pytest.raises(UnreadableFile, match="the file is empty"):
        read_platform_file(path, "douyin", "sessions")


def test_extra_column_is_tolerated_and_reported(tmp_path):
    body = (
        DOUYIN_SESSIONS_HEADER + ",备注\n"
        "7301,88,间,H001,标题,2026-11-10 20:00:00,2026-11-10 22:00:00,1,1,1,1,1,1,1,10.00,1,x\n"
    )
    parsed = read_platform_file(write(tmp_path / "s.csv", body, "utf-8-sig"), "douyin", "sessions")
    assert parsed.extra_columns == ["备注"] and len(parsed.rows) == 1


def test_columns_in_any_order(tmp_path):
    names = DOUYIN_SESSIONS_HEADER.split(",")
    values = [
        "7301",
        "88",
        "间",
        "H001",
        "标题",
        "2026-11-10 20:00:00",
        "",
        "1",
        "1",
        "1",
        "1",
        "1",
        "1",
        "1",
        "10.00",
        "1",
    ]
    body = ",".join(reversed(names)) + "\n" + ",".join(reversed(values)) + "\n"
    parsed = read_platform_file(write(tmp_path / "s.csv", body, "utf-8-sig"), "douyin", "sessions")
    assert parsed.rows.loc[0, "session_id"] == "7301" and parsed.rows.loc[0, "gmv"] == 1000


@pytest.mark.parametrize("platform", ["douyin", "taobao", "jd"])
def test_write_then_read_round_trips(tmp_path, platform):
    frame = pd.DataFrame(
        {
            "refund_id": ["r1", "r2"],
            "order_id": ["o1", "o2"],
            "amount": [129900, 5],
            "refunded_at": pd.to_datetime(["2026-11-11 15:59:59", "2026-11-11 16:00:00"]),
            "reason": ["七天无理由退货", 'a "quoted", reason'],
        }
    )
    path = tmp_path / f"refunds.{'jsonl' if platform == 'jd' else 'csv'}"
    write_platform_file(path, frame, platform, "refunds")
    parsed = read_platform_file(path, platform, "refunds")
    assert parsed.quarantine.empty
    pd.testing.assert_frame_equal(
        parsed.rows.drop(columns="line"), frame, check_dtype=False, check_datetimelike_compat=True
    )
