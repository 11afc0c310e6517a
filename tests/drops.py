"""Raw drops written to disk in the formats users send."""

from __future__ import annotations

import csv
from pathlib import Path

ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def id_number(region: str = "330211", birth: str = "19900307", seq: str = "123") -> str:
    """A valid 18-character ID number (GB 11643 check digit) — test data, not a person."""
    body = region + birth + seq
    total = sum(int(c) * w for c, w in zip(body, ID_WEIGHTS, strict=True))
    return body + "10X98765432"[total % 11]


def write_csv(path: Path, header: list[str], rows: list[list], encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding=encoding, newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_xlsx(path: Path, header: list[str], rows: list[list]) -> Path:
    from openpyxl import Workbook

    path.parent.mkdir(parents=True, exist_ok=True)
    book = Workbook()
    sheet = book.active
    sheet.append(header)
    for row in rows:
        sheet.append(row)
    book.save(path)
    return path


UNION_HEADER = [
    "工会编码",
    "工会名称",
    "所属镇街",
    "单位类型",
    "职工人数",
    "成立日期",
    "授权日期",
    "星级",
    "撤销日期",
]
MEMBER_HEADER = [
    "会员编号",
    "姓名",
    "身份证号",
    "手机号",
    "工会编码",
    "入会日期",
    "离会日期",
    "采集日期",
    "APP认证日期",
    "一线职工",
]
TARGET_HEADER = ["指标代码", "年度", "目标值", "比较", "依据"]


def write_xls(path: Path, header: list[str], rows: list[list], sheet: str = "Sheet1") -> Path:
    """An Excel 97-2003 workbook, as older systems and WPS still export."""
    import xlwt

    path.parent.mkdir(parents=True, exist_ok=True)
    book = xlwt.Workbook(encoding="utf-8")
    table = book.add_sheet(sheet)
    for i, row in enumerate([header, *rows]):
        for j, value in enumerate(row):
            if value is not None and value != "":
                table.write(i, j, value)
    book.save(str(path))
    return path


ENROLMENT_HEADER = ["参保编号", "身份证号", "工会编码", "保障年度", "参保日期", "缴费金额",
                    "保障类型"]  # fmt: skip
CLAIM_HEADER = ["申领编号", "参保编号", "申领日期", "补助金额", "状态"]
LOAN_HEADER = ["贷款编号", "身份证号", "放款日期", "贷款金额", "期限月数", "合作银行", "状态"]
