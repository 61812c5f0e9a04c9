from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from api.examples import page_example


class StoreRead(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "MA010120220805431535",
                    "name": "오미당꽈배기",
                    "branch": "",
                    "category_code": "I21001",
                    "address": "서울특별시 중구 세종대로 110",
                    "district_code": "11140",
                    "lat": 37.5663,
                    "lon": 126.9779,
                }
            ]
        }
    )

    id: str
    name: str
    branch: str
    category_code: str
    address: str
    district_code: str
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)


class StorePage(BaseModel):
    model_config = ConfigDict(json_schema_extra=page_example(StoreRead))

    items: list[StoreRead]
    next_cursor: str | None = Field(description="Pass as `cursor` to get the next page")
